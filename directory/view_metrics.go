package directory

import "github.com/prometheus/client_golang/prometheus"

// viewMetrics are a View's metrics: a collector that reads its snapshot
// at each scrape, and a counter.
type viewMetrics struct {
	v             *View
	origins       *prometheus.Desc
	originStreams *prometheus.Desc
	streams       *prometheus.Desc
	staleness     *prometheus.Desc
	watchRestarts prometheus.Counter
}

func newViewMetrics(v *View) viewMetrics {
	return viewMetrics{
		v:             v,
		origins:       prometheus.NewDesc("directory_origins", "Origins the directory lists (alive: their lease holds).", nil, nil),
		originStreams: prometheus.NewDesc("directory_origin_streams", "Streams the directory lists on an origin, with a role.", []string{"origin"}, nil),
		streams:       prometheus.NewDesc("directory_streams", "Streams some origin serves.", nil, nil),
		staleness:     prometheus.NewDesc("directory_view_staleness_seconds", "0 while the view follows etcd, else the time since it last did.", nil, nil),
		watchRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_view_watch_restarts_total",
			Help: "Times the view loaded the directory again after its watch failed (etcd unreachable, no quorum, compaction).",
		}),
	}
}

func (m viewMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m, m.watchRestarts}
}

// Describe implements prometheus.Collector.
func (m viewMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.origins
	ch <- m.originStreams
	ch <- m.streams
	ch <- m.staleness
}

// Collect implements prometheus.Collector.
func (m viewMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.v.Snapshot()
	ch <- prometheus.MustNewConstMetric(m.origins, prometheus.GaugeValue, float64(len(s.origins)))
	for _, o := range s.origins {
		ch <- prometheus.MustNewConstMetric(m.originStreams, prometheus.GaugeValue, float64(o.Serving), o.ID)
	}
	ch <- prometheus.MustNewConstMetric(m.streams, prometheus.GaugeValue, float64(s.streams))
	ch <- prometheus.MustNewConstMetric(m.staleness, prometheus.GaugeValue, m.v.Staleness().Seconds())
}

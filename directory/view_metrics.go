package directory

import "github.com/prometheus/client_golang/prometheus"

// viewMetrics are a View's metrics: a collector that reads its snapshot
// at each scrape, and a counter.
type viewMetrics struct {
	v               *View
	origins         *prometheus.Desc
	originStreams   *prometheus.Desc
	originPrimaries *prometheus.Desc
	originLoad      *prometheus.Desc
	streams         *prometheus.Desc
	failovers       *prometheus.Desc
	staleness       *prometheus.Desc
	watchRestarts   prometheus.Counter
}

func newViewMetrics(v *View) viewMetrics {
	return viewMetrics{
		v:               v,
		origins:         prometheus.NewDesc("directory_origins", "Origins the directory lists (alive: their lease holds).", nil, nil),
		originStreams:   prometheus.NewDesc("directory_origin_streams", "Streams the directory lists on an origin, with a role.", []string{"origin"}, nil),
		originPrimaries: prometheus.NewDesc("directory_origin_primaries", "Streams the directory lists on an origin as their primary.", []string{"origin"}, nil),
		originLoad:      prometheus.NewDesc("directory_origin_load", "An origin's load as placement weighs it, in typical streams (see directory.Score).", []string{"origin", "zone"}, nil),
		streams:         prometheus.NewDesc("directory_streams", "Streams some origin serves.", nil, nil),
		failovers:       prometheus.NewDesc("directory_failovers_total", "Streams whose backup became their primary (the primary's origin gone, or no longer listing the stream), as this view saw them.", nil, nil),
		staleness:       prometheus.NewDesc("directory_view_staleness_seconds", "0 while the view follows etcd, else the time since it last did.", nil, nil),
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
	ch <- m.originPrimaries
	ch <- m.originLoad
	ch <- m.streams
	ch <- m.failovers
	ch <- m.staleness
}

// Collect implements prometheus.Collector.
func (m viewMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.v.Snapshot()
	ch <- prometheus.MustNewConstMetric(m.origins, prometheus.GaugeValue, float64(len(s.origins)))
	for _, o := range s.origins {
		ch <- prometheus.MustNewConstMetric(m.originStreams, prometheus.GaugeValue, float64(o.Serving), o.ID)
		ch <- prometheus.MustNewConstMetric(m.originPrimaries, prometheus.GaugeValue, float64(o.Primaries), o.ID)
		ch <- prometheus.MustNewConstMetric(m.originLoad, prometheus.GaugeValue, Score(o), o.ID, o.Zone)
	}
	ch <- prometheus.MustNewConstMetric(m.streams, prometheus.GaugeValue, float64(s.streams))
	ch <- prometheus.MustNewConstMetric(m.failovers, prometheus.CounterValue, float64(s.failovers))
	ch <- prometheus.MustNewConstMetric(m.staleness, prometheus.GaugeValue, m.v.Staleness().Seconds())
}

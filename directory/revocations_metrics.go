package directory

import "github.com/prometheus/client_golang/prometheus"

// revocationsMetrics are a Revocations' metrics: a collector that reads
// its state at each scrape, and a counter.
type revocationsMetrics struct {
	r             *Revocations
	sessions      *prometheus.Desc
	ignored       *prometheus.Desc
	staleness     *prometheus.Desc
	watchRestarts prometheus.Counter
}

func newRevocationsMetrics(r *Revocations) revocationsMetrics {
	return revocationsMetrics{
		r:         r,
		sessions:  prometheus.NewDesc("directory_revocations", "Revoked sessions in the list applied (their tokens are denied).", nil, nil),
		ignored:   prometheus.NewDesc("directory_revocations_ignored", "Revocations in etcd left out of the list: beyond MaxSessions, or keys that name no session.", nil, nil),
		staleness: prometheus.NewDesc("directory_revocations_staleness_seconds", "0 while the list follows etcd, else the time since it last did (the last list stays in force).", nil, nil),
		watchRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_revocations_watch_restarts_total",
			Help: "Times the list was loaded again after its watch failed (etcd unreachable, no quorum, compaction).",
		}),
	}
}

func (m revocationsMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m, m.watchRestarts}
}

// Describe implements prometheus.Collector.
func (m revocationsMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.sessions
	ch <- m.ignored
	ch <- m.staleness
}

// Collect implements prometheus.Collector.
func (m revocationsMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(m.r.held.Load()))
	ch <- prometheus.MustNewConstMetric(m.ignored, prometheus.GaugeValue, float64(m.r.ignored.Load()))
	ch <- prometheus.MustNewConstMetric(m.staleness, prometheus.GaugeValue, m.r.follow.Staleness().Seconds())
}

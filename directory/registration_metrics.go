package directory

import "github.com/prometheus/client_golang/prometheus"

// registrationMetrics are a Registration's metrics.
type registrationMetrics struct {
	registered     prometheus.Gauge
	leaseLosses    prometheus.Counter
	watchRestarts  prometheus.Counter
	epochConflicts prometheus.Counter
	requests       prometheus.Counter
}

func newRegistrationMetrics() registrationMetrics {
	return registrationMetrics{
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "directory_registration_registered",
			Help: "1 while the origin holds a lease with its record written under it, else 0.",
		}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_registration_lease_losses_total",
			Help: "Leases the origin lost (etcd unreachable past the TTL), each followed by registering again.",
		}),
		watchRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_registration_watch_restarts_total",
			Help: "Restarts of the origin's watch on epoch records.",
		}),
		epochConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_registration_epoch_conflicts_total",
			Help: "Epoch records found naming another epoch than the one the origin serves.",
		}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_registration_requests_total",
			Help: "Requests to etcd (grants, transactions, revocations, watches), lease keep-alives aside (one every TTL/3).",
		}),
	}
}

func (m registrationMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.registered, m.leaseLosses, m.watchRestarts, m.epochConflicts, m.requests}
}

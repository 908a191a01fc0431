package gslb

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are the balancer's Prometheus collectors.
type metrics struct {
	assignments *prometheus.CounterVec
	viewers     *prometheus.GaugeVec
	egress      *prometheus.GaugeVec
	capacity    *prometheus.GaugeVec
	predError   *prometheus.GaugeVec
	draining    *prometheus.GaugeVec
	overflow    prometheus.Counter
	unavailable prometheus.Counter
}

// popMetrics are one PoP's resolved children of the vectors.
type popMetrics struct {
	assigned             map[string]prometheus.Counter // by reason
	viewers, predViewers prometheus.Gauge
	egress, predEgress   prometheus.Gauge
	capViewers, capBPS   prometheus.Gauge
	predError, draining  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, live func() float64) (*metrics, error) {
	m := &metrics{
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_gslb_assignments_total",
			Help: "Viewers sent to a PoP, by PoP and reason: nearest, or spillover (nearer PoPs full, draining or silent).",
		}, []string{"pop", "reason"}),
		viewers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_gslb_pop_viewers",
			Help: "A PoP's viewers: measured (last report) and predicted (for the report's time plus the horizon).",
		}, []string{"pop", "kind"}),
		egress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_gslb_pop_egress_bps",
			Help: "A PoP's egress in bits/s: measured (last report) and predicted.",
		}, []string{"pop", "kind"}),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_gslb_pop_capacity",
			Help: "A PoP's capacity as reported, in viewers or bps (0: no limit).",
		}, []string{"pop", "unit"}),
		predError: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_gslb_pop_prediction_error_viewers",
			Help: "Measured minus predicted viewers, for the last report that a prediction aimed at.",
		}, []string{"pop"}),
		draining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_gslb_pop_draining",
			Help: "1 while a PoP drains: it takes no new viewers.",
		}, []string{"pop"}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_gslb_overflow_total",
			Help: "Viewers sent to the overflow URL because no PoP could take them.",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_gslb_unavailable_total",
			Help: "Viewers refused (503) because no PoP could take them and there is no overflow URL.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	pops := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "live_gslb_pops",
		Help: "PoPs that may be sent viewers: reporting and not draining.",
	}, live)
	if err := promreg.Register(reg, m.assignments, m.viewers, m.egress, m.capacity, m.predError, m.draining, m.overflow, m.unavailable, pops); err != nil {
		return nil, err
	}
	return m, nil
}

// pop resolves the children for PoP name.
func (m *metrics) pop(name string) *popMetrics {
	return &popMetrics{
		assigned: map[string]prometheus.Counter{
			ReasonNearest:   m.assignments.WithLabelValues(name, ReasonNearest),
			ReasonSpillover: m.assignments.WithLabelValues(name, ReasonSpillover),
		},
		viewers:     m.viewers.WithLabelValues(name, "measured"),
		predViewers: m.viewers.WithLabelValues(name, "predicted"),
		egress:      m.egress.WithLabelValues(name, "measured"),
		predEgress:  m.egress.WithLabelValues(name, "predicted"),
		capViewers:  m.capacity.WithLabelValues(name, "viewers"),
		capBPS:      m.capacity.WithLabelValues(name, "bps"),
		predError:   m.predError.WithLabelValues(name),
		draining:    m.draining.WithLabelValues(name),
	}
}

// forget drops the gauges of a removed PoP; its assignment counters stay.
func (m *metrics) forget(name string) {
	for _, v := range []*prometheus.GaugeVec{m.viewers, m.egress, m.capacity, m.predError, m.draining} {
		v.DeletePartialMatch(prometheus.Labels{"pop": name})
	}
}

package web

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are the QoE collectors: counters of beacons, and per-stream
// figures computed when scraped.
type metrics struct {
	beacons         *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	sessions        *prometheus.CounterVec
	sessionRejected *prometheus.CounterVec
	firstFrame      prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		beacons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_qoe_beacons_total",
			Help: "QoE beacons accepted, by event.",
		}, []string{"event"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_qoe_beacons_rejected_total",
			Help: "QoE beacons refused, by reason (rate, size, invalid, stream, sessions, " +
				"session_missing, session_forged, session_expired, session_rate).",
		}, []string{"reason"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_qoe_sessions_issued_total",
			Help: "QoE session tokens issued, by kind (new, renewal).",
		}, []string{"kind"}),
		sessionRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_qoe_session_requests_rejected_total",
			Help: "QoE session requests refused, by reason (rate, size, invalid, stream, issue_rate, " +
				"session_forged, session_expired).",
		}, []string{"reason"}),
		firstFrame: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "live_qoe_first_frame_seconds",
			Help:    "Time from page load to the first frame, as players report it.",
			Buckets: []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13},
		}),
	}
	if err := promreg.Register(reg, m.beacons, m.rejected, m.sessions, m.sessionRejected, m.firstFrame, qoeCollector{s}); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return m, nil
}

var (
	descUsers   = prometheus.NewDesc("live_qoe_users", "Sessions heard from in the last minute.", []string{"stream"}, nil)
	descStalled = prometheus.NewDesc("live_qoe_stalled_users",
		"Sessions that stalled (buffer empty for 2 s or more) in the last minute.", []string{"stream"}, nil)
	descStallRate = prometheus.NewDesc("live_qoe_stall_rate", "One-minute user stall rate: stalled users / users.", []string{"stream"}, nil)
	descViewers   = prometheus.NewDesc("live_qoe_viewers", "Sessions heard from in the last 30 s.", []string{"stream"}, nil)
)

// qoeCollector reports the QoE figures of every stream at scrape time.
type qoeCollector struct{ s *Server }

func (qoeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUsers
	ch <- descStalled
	ch <- descStallRate
	ch <- descViewers
}

func (c qoeCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, name := range c.s.qoe.names() {
		f := c.s.qoe.figures(name, now)
		ch <- prometheus.MustNewConstMetric(descUsers, prometheus.GaugeValue, float64(f.Users), name)
		ch <- prometheus.MustNewConstMetric(descStalled, prometheus.GaugeValue, float64(f.Stalled), name)
		ch <- prometheus.MustNewConstMetric(descStallRate, prometheus.GaugeValue, f.StallRate, name)
		ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(f.Viewers), name)
	}
}

package origin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are the origin's Prometheus collectors.
type metrics struct {
	publishes    prometheus.Counter
	segments     *prometheus.CounterVec
	segmentBytes *prometheus.CounterVec
	availability prometheus.Histogram
	requests     *prometheus.CounterVec
	bytesServed  *prometheus.CounterVec
	held         prometheus.Gauge
	streamed     prometheus.Counter
	keyRequests  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_origin_publishes_total",
			Help: "Publisher sessions accepted.",
		}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_segments_total",
			Help: "Media segments packaged, by kind.",
		}, []string{"kind"}),
		segmentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_segment_bytes_total",
			Help: "Bytes of media segments packaged, by kind.",
		}, []string{"kind"}),
		availability: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "live_origin_segment_availability_seconds",
			Help:    "Time from the arrival at ingest of the access unit that closes a segment to the segment being listed in the playlists.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25},
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_requests_total",
			Help: "HTTP requests answered, by object class and status.",
		}, []string{"class", "code"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_bytes_served_total",
			Help: "Body bytes served, by object class.",
		}, []string{"class"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "live_origin_held_requests",
			Help: "Requests waiting for a segment or playlist that is not produced yet.",
		}),
		streamed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_origin_segments_streamed_total",
			Help: "Segment requests answered chunk by chunk while the segment was produced.",
		}),
		keyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_key_requests_total",
			Help: "Key requests of encrypted streams answered (license: ClearKey license requests; key: HLS key URIs), by status.",
		}, []string{"kind", "code"}),
	}
	if err := promreg.Register(reg, m.publishes, m.segments, m.segmentBytes, m.availability, m.requests, m.bytesServed, m.held, m.streamed, m.keyRequests); err != nil {
		return nil, err
	}
	return m, nil
}

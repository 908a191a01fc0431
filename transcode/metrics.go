package transcode

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are the transcoder's Prometheus metrics. Per-stream series are
// deleted when the stream's job ends.
type metrics struct {
	jobs            prometheus.Gauge
	passthroughOnly prometheus.Counter
	restarts        *prometheus.CounterVec // stream
	framesIn        *prometheus.CounterVec // stream
	dropped         *prometheus.CounterVec // stream
	framesOut       *prometheus.CounterVec // stream, rung
	speed           *prometheus.GaugeVec   // stream, rung
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "live_transcode_jobs",
			Help: "Streams being transcoded.",
		}),
		passthroughOnly: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_transcode_passthrough_only_total",
			Help: "Streams given their source rendition only because the transcode limit was reached.",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_transcode_restarts_total",
			Help: "ffmpeg restarts after a failure, per stream.",
		}, []string{"stream"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_transcode_frames_in_total",
			Help: "Source frames queued for ffmpeg, per stream.",
		}, []string{"stream"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_transcode_frames_dropped_total",
			Help: "Source frames not transcoded (ffmpeg behind, or restarting), per stream.",
		}, []string{"stream"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_transcode_frames_out_total",
			Help: "Frames encoded into a ladder rendition.",
		}, []string{"stream", "rung"}),
		speed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_transcode_speed_ratio",
			Help: "Media time encoded per wall-clock second over the last 5 s (1 = real time; below 1, the rendition falls behind).",
		}, []string{"stream", "rung"}),
	}
	if err := promreg.Register(reg, m.jobs, m.passthroughOnly, m.restarts, m.framesIn, m.dropped, m.framesOut, m.speed); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	return m, nil
}

// forget deletes a finished job's series.
func (m *metrics) forget(stream string, rungs []Rung) {
	m.restarts.DeleteLabelValues(stream)
	m.framesIn.DeleteLabelValues(stream)
	m.dropped.DeleteLabelValues(stream)
	for _, r := range rungs {
		m.framesOut.DeleteLabelValues(stream, r.Name)
		m.speed.DeleteLabelValues(stream, r.Name)
	}
}

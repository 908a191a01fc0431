package archive

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// writerMetrics are a Writer's collectors. Kind labels: init, segment,
// meta (epoch records), index (index lines).
type writerMetrics struct {
	queued       [opEnd + 1]prometheus.Counter // by op, resolved once
	written      *prometheus.CounterVec
	writtenBytes *prometheus.CounterVec
	errors       *prometheus.CounterVec
	full         prometheus.Counter
	retries      prometheus.Counter
	dropped      *prometheus.CounterVec
	queueFull    [opEnd + 1]prometheus.Counter // dropped, by op, resolved once
	latency      *prometheus.HistogramVec
}

func newWriterMetrics(reg prometheus.Registerer, depth func() (int, int64)) (*writerMetrics, error) {
	queued := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "archive_queued_total", Help: "Items queued for the archive, by kind.",
	}, []string{"kind"})
	m := &writerMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archive_written_total", Help: "Archive store writes that succeeded, by kind.",
		}, []string{"kind"}),
		writtenBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archive_written_bytes_total", Help: "Bytes written to the archive store, by kind.",
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archive_write_errors_total", Help: "Archive store writes that failed, by kind.",
		}, []string{"kind"}),
		full: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_store_full_total", Help: "Archive store writes that failed because the store is full (ENOSPC, quota).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_retries_total", Help: "Archive writes retried after a failure.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archive_dropped_total", Help: "Items dropped unwritten, by kind and reason (queue_full: the oldest, for a new one; shutdown: left when Run returned).",
		}, []string{"kind", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "archive_write_seconds", Help: "Latency of successful archive store writes, by kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
	}
	for o := range m.queued {
		kind := (&item{op: op(o)}).kind()
		m.queued[o] = queued.WithLabelValues(kind)
		m.queueFull[o] = m.dropped.WithLabelValues(kind, "queue_full")
	}
	depthItems := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "archive_queue_depth", Help: "Items queued for the archive or being written.",
	}, func() float64 { n, _ := depth(); return float64(n) })
	depthBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "archive_queue_bytes", Help: "Bytes of the media segments queued for the archive or being written.",
	}, func() float64 { _, b := depth(); return float64(b) })
	err := promreg.Register(reg, queued, m.written, m.writtenBytes, m.errors, m.full, m.retries,
		m.dropped, m.latency, depthItems, depthBytes)
	if err != nil {
		return nil, err
	}
	return m, nil
}

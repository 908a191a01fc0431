package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are the RTMP server's Prometheus collectors.
type metrics struct {
	connections prometheus.Gauge
	pending     prometheus.Gauge
	publishers  prometheus.Gauge
	refused     *prometheus.CounterVec // reason
	takeovers   prometheus.Counter
	republished prometheus.Counter
	bytesIn     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "live_ingest_connections",
			Help: "Open RTMP connections, publishing or not yet.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "live_ingest_pending_connections",
			Help: "Open RTMP connections that have not published yet (MaxPending).",
		}),
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "live_ingest_publishers",
			Help: "RTMP connections holding a stream name.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_ingest_refused_total",
			Help: "Publishers refused, by reason: bad_name, unauthorized, auth_unavailable, busy, codec, play, rejected (by the origin), failed (mid-stream), too_many (a new connection with MaxConns, MaxPending or MaxPendingPerAddr reached and no idle connection to close), evicted (a connection idle before publishing, closed to make room for a new one), timeout (no publish within PublishTimeout), protocol (a rule of RTMP broken, e.g. a chunk size above 64 KiB, or a message the connection may not send or its memory budget allows).",
		}, []string{"reason"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_ingest_takeovers_total",
			Help: "Silent publishers replaced by a new connection for their stream.",
		}),
		republished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_ingest_republished_total",
			Help: "Streams published anew, under a new epoch, because the publisher's video setup (codec string or picture size) changed mid-stream.",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_ingest_received_bytes_total",
			Help: "Bytes received from RTMP clients.",
		}),
	}
	if err := promreg.Register(reg, m.connections, m.pending, m.publishers, m.refused, m.takeovers, m.republished, m.bytesIn); err != nil {
		return nil, err
	}
	return m, nil
}

// refusal is the reason label of a refusal for err.
func refusal(code string, err error) string {
	switch {
	case errors.Is(err, ErrBadName):
		return "bad_name"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrAuthUnavailable):
		return "auth_unavailable"
	case errors.Is(err, ErrStreamBusy):
		return "busy"
	case errors.Is(err, ErrUnsupportedCodec):
		return "codec"
	case errors.Is(err, ErrPlayUnsupported):
		return "play"
	case code == "NetStream.Publish.Failed":
		return "failed"
	}
	return "rejected"
}

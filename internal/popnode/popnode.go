// Package popnode wires what cmd/pop serves: a PoP node with the watch
// page, the dashboard and the QoE beacons next to it, and /metrics.
package popnode

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/web"
)

// New builds what cmd/pop serves: a PoP node with the watch page, the
// dashboard and the QoE beacons next to it, and /metrics. The stream list
// comes from the first origin's /api/streams. reg receives every metric;
// it is served at /metrics.
func New(cfg pop.Config, reg *prometheus.Registry) (http.Handler, *pop.Server, error) {
	cfg.Registerer = reg
	node, err := pop.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	pages, err := web.New(web.Config{
		Streams:    web.RemoteStreams(&http.Client{}, cfg.Origins[0]),
		PoP:        node.StreamStats,
		Logger:     cfg.Logger,
		Registerer: reg,
	})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	pages.Handle(mux)
	mux.Handle("/", node)
	return httpserve.PrefixFirst(node, mux, layout.Prefix, layout.VODPrefix, layout.TokenPrefix), node, nil
}

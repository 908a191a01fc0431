// Package popnode wires what cmd/pop serves: a PoP node with the watch
// page, the dashboard and the QoE beacons next to it, and /metrics.
package popnode

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golivestream/live/directory"
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
	return NewFleet(cfg, reg, nil)
}

// NewFleet is New for a node of a fleet of origins whose directory view
// follows (cmd/pop -etcd): the stream list comes from every origin of the
// fleet (from the first of cfg.Origins while the view has none), and GET
// /api/origins and the dashboard show the origins. A nil view is New.
func NewFleet(cfg pop.Config, reg *prometheus.Registry, view *directory.View) (http.Handler, *pop.Server, error) {
	cfg.Registerer = reg
	node, err := pop.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	client := &http.Client{}
	wcfg := web.Config{
		Streams:    web.RemoteStreams(client, cfg.Origins[0]),
		PoP:        node.StreamStats,
		Logger:     cfg.Logger,
		Registerer: reg,
	}
	if view != nil {
		wcfg.Streams = web.FleetStreams(client, func() []string {
			var urls []string
			for _, o := range view.Snapshot().Origins() {
				urls = append(urls, o.PublicURL)
			}
			return urls
		}, wcfg.Streams)
		wcfg.Fleet = func() web.Fleet { return fleetOf(view) }
	}
	pages, err := web.New(wcfg)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	pages.Handle(mux)
	mux.Handle("/", node)
	return httpserve.PrefixFirst(node, mux, layout.Prefix, layout.VODPrefix, layout.TokenPrefix), node, nil
}

// fleetOf is the fleet as view has it now.
func fleetOf(view *directory.View) web.Fleet {
	h, _ := view.Health()
	f := web.Fleet{Current: h.Current}
	for _, o := range view.Snapshot().Origins() {
		f.Origins = append(f.Origins, web.FleetOrigin{
			ID: o.ID, Zone: o.Zone, URL: o.PublicURL,
			Streams: o.Serving, Primaries: o.Primaries,
			IngestStreams: o.Load.Streams, IngestBPS: o.Load.IngestBPS, TranscodeCPU: o.Load.TranscodeCPU,
			Score: directory.Score(o), Updated: o.Updated,
		})
	}
	return f
}

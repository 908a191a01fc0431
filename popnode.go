package live

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/web"
)

// NewPoPNode builds what cmd/pop serves: a PoP node with the watch page,
// the dashboard and the QoE beacons next to it, and /metrics. The stream
// list comes from the first origin's /api/streams. reg receives every
// metric; it must also be a prometheus.Gatherer to be served.
func NewPoPNode(cfg pop.Config, reg *prometheus.Registry) (http.Handler, *pop.Server, error) {
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
	return liveFirst(node, mux), node, nil
}

// liveFirst sends the media paths (/live/...), nearly every request a PoP
// gets, straight to the cache, without a trip through the mux's routing.
func liveFirst(live, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/live/") {
			live.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

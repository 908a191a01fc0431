package gslb

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golivestream/live/internal/layout"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Balancer decides the routes. Required.
	Balancer *Balancer
	// TrustedProxies are the networks of the proxies in front of the
	// server: only a request from one of them has its X-Forwarded-For
	// believed, from the right, up to the first address outside them.
	// Empty means none: the client is the connection's peer.
	TrustedProxies []netip.Prefix
	// ControlNetworks may send reports and replace the map. Empty means
	// any address.
	ControlNetworks []netip.Prefix
	// ControlToken, when set, must be sent as "Authorization: Bearer
	// TOKEN" with reports and map changes.
	ControlToken string
	// Gatherer serves /metrics. Nil means no /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's metrics. Nil means not registered.
	Registerer prometheus.Registerer
	// Ingest, when not nil, places a publisher of a stream on the fleet's
	// origins (GET /api/ingest/{stream}): a primary and a backup in
	// different zones, the least loaded, or the origins already serving
	// the stream. An error is answered 503. Nil means the balancer places
	// viewers only (404).
	Ingest func(stream string) (IngestRoute, error)
	// Logger receives rejected requests and report sessions. Nil means
	// discard.
	Logger *slog.Logger
}

// Server is the balancer's HTTP interface. It is safe for concurrent use.
//
//	GET  /play/{stream}/index.m3u8    302 to {pop}/live/{stream}/index.m3u8
//	GET  /play/{stream}/manifest.mpd  302 to {pop}/live/{stream}/manifest.mpd
//	GET  /play/t/{token}/{stream}/{file}, /play/{stream}/{file}?token=
//	                                  302 to {pop}/t/{token}/live/{stream}/{file}
//	GET  /api/ingest/{stream}         where a publisher pushes: primary and backup RTMP URLs (IngestRoute)
//	GET  /api/route?ip=ADDR           the route for ADDR (default: the client), JSON, not counted
//	GET  /api/pops                    the PoPs as the balancer sees them, JSON
//	GET  /api/map, PUT /api/map       the latency map (see MapFile)
//	POST /api/report                  a PoP's report (see Report and serveReport)
//	GET  /metrics, GET /healthz
type Server struct {
	cfg      ServerConfig
	b        *Balancer
	log      *slog.Logger
	mux      *http.ServeMux
	reports  *prometheus.CounterVec
	sessions sessionSet
}

// sessionSet holds the report sessions in progress.
type sessionSet struct {
	next atomic.Uint64
	mu   sync.Mutex
	// open are the sessions in progress; closed is set by closeAll. Both
	// guarded by mu.
	open   map[*session]struct{}
	closed bool
}

// NewServer validates cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Balancer == nil {
		return nil, errors.New("gslb: ServerConfig.Balancer is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg,
		b:   cfg.Balancer,
		log: cfg.Logger,
		mux: http.NewServeMux(),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_gslb_reports_total",
			Help: "PoP reports received, by result: ok, invalid, refused (network or token).",
		}, []string{"result"}),
	}
	s.sessions.open = make(map[*session]struct{})
	if cfg.Registerer != nil {
		sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "live_gslb_report_sessions",
			Help: "PoP report sessions open.",
		}, func() float64 { return float64(s.sessions.count()) })
		for _, c := range []prometheus.Collector{s.reports, sessions} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("gslb: register metrics: %w", err)
			}
		}
	}
	s.mux.HandleFunc("GET /play/{stream}/{file}", s.servePlay)
	s.mux.HandleFunc("GET /play/t/{token}/{stream}/{file}", s.servePlay)
	s.mux.HandleFunc("GET /api/route", s.serveRoute)
	s.mux.HandleFunc("GET /api/ingest/{stream}", s.serveIngest)
	s.mux.HandleFunc("GET /api/pops", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.b.PoPs())
	})
	s.mux.HandleFunc("GET /api/map", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Map().File())
	})
	s.mux.HandleFunc("PUT /api/map", s.control(s.servePutMap))
	s.mux.HandleFunc("POST /api/report", s.control(s.serveReport))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	if cfg.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	return s, nil
}

// ServeHTTP routes r.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// servePlay redirects a player to its PoP: request-level scheduling, so
// each player is placed by the load when it arrives. The redirect is never
// cached: the next player may be placed elsewhere.
func (s *Server) servePlay(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	stream, file := r.PathValue("stream"), r.PathValue("file")
	if file != "index.m3u8" && file != "manifest.mpd" {
		http.Error(w, "not found: /play/{stream}/index.m3u8 or /play/{stream}/manifest.mpd", http.StatusNotFound)
		return
	}
	if !layout.ValidStream(stream) {
		http.Error(w, "invalid stream name: must match [A-Za-z0-9_-]{1,64}", http.StatusBadRequest)
		return
	}
	// A playback token goes on in the path, where the PoP and the
	// manifests' relative URIs keep it (pop: access.go).
	target := layout.Prefix + stream + "/" + file
	token := r.PathValue("token")
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	if token != "" {
		t, _, ok := layout.SplitToken(layout.TokenPrefix + token + target)
		if !ok || t != token {
			http.Error(w, "malformed token", http.StatusBadRequest)
			return
		}
		target = layout.TokenPrefix + token + target
	}
	rt := s.b.Assign(s.clientAddr(r))
	if rt.URL == "" {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no PoP can take a viewer now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Location", rt.URL+target)
	w.WriteHeader(http.StatusFound)
}

// serveRoute answers the route an address would get now, without
// counting it: ?ip=ADDR, or the client's own.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request) {
	addr := s.clientAddr(r)
	if q := r.URL.Query().Get("ip"); q != "" {
		a, err := netip.ParseAddr(q)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("ip: %v", err)})
			return
		}
		addr = a
	}
	writeJSON(w, http.StatusOK, struct {
		IP string `json:"ip"`
		Route
	}{addr.String(), s.b.Peek(addr)})
}

// maxMapBody bounds PUT /api/map.
const maxMapBody = maxMapFileBytes

func (s *Server) servePutMap(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMapBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("read map: %v", err)})
		return
	}
	m, err := ParseMap(data)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	s.b.SetMap(m)
	writeJSON(w, http.StatusOK, struct {
		Networks int `json:"networks"`
	}{m.Networks()})
}

// control admits the requests of PoPs and operators: from
// ControlNetworks, with ControlToken.
func (s *Server) control(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := s.clientAddr(r)
		if len(s.cfg.ControlNetworks) > 0 && !containsAddr(s.cfg.ControlNetworks, addr) {
			s.refuse(w, r, addr, http.StatusForbidden, "address not in the control networks")
			return
		}
		if tok := s.cfg.ControlToken; tok != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+tok)) != 1 {
				s.refuse(w, r, addr, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, addr netip.Addr, status int, why string) {
	if r.URL.Path == "/api/report" {
		s.reports.WithLabelValues("refused").Inc()
	}
	s.log.Warn("control request refused", "path", r.URL.Path, "client", addr, "reason", why)
	writeJSON(w, status, errorBody{why})
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers v as JSON, never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // a client gone is no one else's problem
}

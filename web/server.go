// Package web serves what people see of the system: the watch page (hls.js
// and dash.js, embedded), the live dashboard, the stream list API with QoE
// and cache figures, and the QoE beacons the pages send back.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/pop"
)

//go:embed static
var static embed.FS

// Config configures a Server.
type Config struct {
	// Streams lists the streams as the origin describes them. Required.
	Streams func(ctx context.Context) ([]streaminfo.Stream, error)
	// PoP, when not nil, gives the cache figures of each stream.
	PoP func(stream string) pop.StreamStats
	// Fleet, when not nil, describes the fleet of origins the node
	// follows (its directory), for GET /api/origins and the dashboard.
	// Nil means none: GET /api/origins answers 404.
	Fleet func() Fleet
	// FPSFloor is the ingest frame rate below which the dashboard shows a
	// rendition in red. Zero means 20.
	FPSFloor float64
	// BeaconRate and BeaconBurst bound the beacons and session requests one
	// client address may send: a token bucket. Zero means 5 per second,
	// bursts of 50.
	BeaconRate, BeaconBurst float64
	// SessionKey signs the QoE session tokens (HMAC-SHA256); at least 16
	// bytes. Nil means 32 random bytes made by New: tokens are then good
	// with this process only, and after a restart pages start new sessions.
	// Nodes that may get the beacons of a page another node served need the
	// same key.
	SessionKey []byte
	// SessionTTL is how long a session token is good; pages renew theirs at
	// half of it. Zero means 10 minutes; under a minute is an error.
	SessionTTL time.Duration
	// SessionsPerMinute bounds the sessions one client address (an IPv6
	// /64) may start: that many at once, then that many a minute. Pages
	// beyond it play, uncounted, and ask again every 30 s. Renewals do not
	// count. Zero means 10: a household or a small office behind one NAT.
	SessionsPerMinute int
	// SessionBeaconsPerMinute and SessionBeaconBurst bound the beacons one
	// session may send: a token bucket. Zero means 30 a minute, bursts of
	// 10; a page sends a heartbeat every 10 s, and start, stall, switch and
	// error beacons as they happen.
	SessionBeaconsPerMinute, SessionBeaconBurst int
	// MaxSessions bounds the sessions kept, all streams together, each
	// about 120 bytes; a beacon of a new session beyond it is refused until
	// others have been silent for a minute. Zero means 100 000 (12 MB).
	// Issuing a session keeps nothing: its token carries it.
	MaxSessions int
	// Logger receives events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the QoE metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

// RemoteStreams returns a Config.Streams that asks an origin's (or an
// upstream PoP's) /api/streams, for a PoP node that is not in the origin's
// process.
func RemoteStreams(client *http.Client, originURL string) func(context.Context) ([]streaminfo.Stream, error) {
	return func(ctx context.Context) ([]streaminfo.Stream, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(originURL, "/")+"/api/streams", nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("stream list: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("stream list: status %d", resp.StatusCode)
		}
		var body struct {
			Streams []streaminfo.Stream `json:"streams"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
			return nil, fmt.Errorf("stream list: %w", err)
		}
		return body.Streams, nil
	}
}

// Server serves the pages and APIs. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	qoe     *qoeStore
	limit   *limiter // beacons and session requests per client address
	issue   *limiter // new sessions per client address (IPv6 /64)
	signer  *sessionSigner
	drops   *dropLog
	metrics *metrics
	routes  []route
	mux     *http.ServeMux // s.routes alone

	mu sync.Mutex
	// cached is the last stream list and when it was taken; guarded by mu.
	cached   []streaminfo.Stream
	cachedAt time.Time
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Streams == nil {
		return nil, errors.New("web: Streams is required")
	}
	if cfg.FPSFloor <= 0 {
		cfg.FPSFloor = 20
	}
	if cfg.BeaconRate <= 0 {
		cfg.BeaconRate = 5
	}
	if cfg.BeaconBurst <= 0 {
		cfg.BeaconBurst = 50
	}
	switch n := len(cfg.SessionKey); {
	case n == 0:
		cfg.SessionKey = newSessionKey()
	case n < 16:
		return nil, fmt.Errorf("web: SessionKey has %d bytes, want at least 16", n)
	default:
		cfg.SessionKey = bytes.Clone(cfg.SessionKey)
	}
	switch {
	case cfg.SessionTTL == 0:
		cfg.SessionTTL = 10 * time.Minute
	case cfg.SessionTTL < time.Minute:
		return nil, fmt.Errorf("web: SessionTTL %v, want at least a minute", cfg.SessionTTL)
	}
	if cfg.SessionsPerMinute <= 0 {
		cfg.SessionsPerMinute = 10
	}
	if cfg.SessionBeaconsPerMinute <= 0 {
		cfg.SessionBeaconsPerMinute = 30
	}
	if cfg.SessionBeaconBurst <= 0 {
		cfg.SessionBeaconBurst = 10
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 100000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
		qoe: newQoEStore(qoeLimits{
			maxSessions: cfg.MaxSessions,
			perMinute:   float64(cfg.SessionBeaconsPerMinute),
			burst:       float64(cfg.SessionBeaconBurst),
		}),
		limit:  newLimiter(cfg.BeaconRate, cfg.BeaconBurst, limiterClients),
		issue:  newLimiter(float64(cfg.SessionsPerMinute)/60, float64(cfg.SessionsPerMinute), limiterClients),
		signer: &sessionSigner{key: cfg.SessionKey, ttl: cfg.SessionTTL},
		drops:  newDropLog(cfg.Logger, time.Minute),
	}
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	s.routes = []route{
		{"GET /{$}", s.page(sub, "index.html")},
		{"GET /dashboard", s.page(sub, "dashboard.html")},
		{"GET /static/", http.StripPrefix("/static", staticCache(files))},
		{"GET /api/streams", http.HandlerFunc(s.serveStreams)},
		{"GET /api/streams/{name}", http.HandlerFunc(s.serveStream)},
		{"GET /api/origins", http.HandlerFunc(s.serveOrigins)},
		{"POST /api/qoe", http.HandlerFunc(s.serveBeacon)},
		{"POST /api/qoe/session", http.HandlerFunc(s.serveSession)},
	}
	s.mux = http.NewServeMux()
	s.Handle(s.mux)
	return s, nil
}

// limiterClients bounds the client addresses each limiter remembers, each
// about 180 bytes: 12 MB a limiter at most.
const limiterClients = 65536

// route is one of the server's patterns and its handler.
type route struct {
	pattern string
	handler http.Handler
}

// Handle registers the server's routes on mux, next to others (the PoP or
// the origin at "/").
func (s *Server) Handle(mux *http.ServeMux) {
	for _, rt := range s.routes {
		mux.Handle(rt.pattern, rt.handler)
	}
}

// ServeHTTP serves the pages and APIs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) page(fsys fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, fsys, name)
	}
}

// staticCache lets browsers keep scripts for an hour.
func staticCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// StreamView is one stream in GET /api/streams: the origin's description
// with the players' QoE and the PoP's cache figures.
type StreamView struct {
	streaminfo.Stream
	Viewers int       `json:"viewers"`
	QoE     QoE       `json:"qoe"`
	PoP     *PoPStats `json:"pop,omitempty"`
}

// PoPStats are a stream's cache figures at this PoP node.
type PoPStats struct {
	Requests      int64   `json:"requests"`
	HitRatio      float64 `json:"hit_ratio"`
	OriginFetches int64   `json:"origin_fetches"`
}

// streams returns the stream list, taken at most once a second.
func (s *Server) streams(ctx context.Context) ([]streaminfo.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.cachedAt) < time.Second && s.cached != nil {
		return s.cached, nil
	}
	list, err := s.cfg.Streams(ctx)
	if err != nil {
		return nil, err
	}
	s.cached, s.cachedAt = list, time.Now()
	known := map[string]bool{}
	for _, st := range list {
		known[st.Name] = true
	}
	s.qoe.forget(func(name string) bool { return known[name] })
	return list, nil
}

// live reports whether stream is a live stream.
func (s *Server) live(ctx context.Context, stream string) bool {
	list, err := s.streams(ctx)
	if err != nil {
		return false
	}
	for _, st := range list {
		if st.Name == stream {
			return st.Live
		}
	}
	return false
}

func (s *Server) serveStreams(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	list, ok := s.listOr502(w, r)
	if !ok {
		return
	}
	now := time.Now()
	views := make([]StreamView, 0, len(list))
	for _, st := range list {
		// A private stream's name is no viewer's business: its viewers
		// come with a token and the name (serveStream).
		if !st.Private {
			views = append(views, s.view(st, now))
		}
	}
	json.NewEncoder(w).Encode(struct {
		FPSFloor float64      `json:"fps_floor"`
		Streams  []StreamView `json:"streams"`
	}{s.cfg.FPSFloor, views})
}

// serveStream answers GET /api/streams/{name}: one stream as the list
// describes it, or 404. A watch page waiting for its stream asks this,
// not for the whole list.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	list, ok := s.listOr502(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	for _, st := range list {
		if st.Name == name {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(s.view(st, time.Now()))
			return
		}
	}
	http.Error(w, "no such stream", http.StatusNotFound)
}

// listOr502 returns the stream list, or answers 502 when it cannot be had.
func (s *Server) listOr502(w http.ResponseWriter, r *http.Request) ([]streaminfo.Stream, bool) {
	list, err := s.streams(r.Context())
	if err != nil {
		s.log.Warn("stream list", "error", err)
		http.Error(w, "stream list unavailable", http.StatusBadGateway)
		return nil, false
	}
	return list, true
}

// view is st with the players' QoE and the PoP's cache figures.
func (s *Server) view(st streaminfo.Stream, now time.Time) StreamView {
	v := StreamView{Stream: st, QoE: s.qoe.figures(st.Name, now)}
	v.Viewers = v.QoE.Viewers
	if s.cfg.PoP != nil {
		ps := s.cfg.PoP(st.Name)
		v.PoP = &PoPStats{Requests: ps.Requests, HitRatio: ps.HitRatio(), OriginFetches: ps.OriginFetches}
	}
	return v
}

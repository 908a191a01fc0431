// Package web serves what people see of the system: the watch page (hls.js
// and dash.js, embedded), the live dashboard, the stream list API with QoE
// and cache figures, and the QoE beacons the pages send back.
package web

import (
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

	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

//go:embed static
var static embed.FS

// Config configures a Server.
type Config struct {
	// Streams lists the streams as the origin describes them. Required.
	Streams func(ctx context.Context) ([]origin.StreamInfo, error)
	// PoP, when not nil, gives the cache figures of each stream.
	PoP func(stream string) pop.StreamStats
	// FPSFloor is the ingest frame rate below which the dashboard shows a
	// rendition in red. Zero means 20.
	FPSFloor float64
	// BeaconRate and BeaconBurst bound the beacons one client address may
	// send: a token bucket. Zero means 5 per second, bursts of 50.
	BeaconRate, BeaconBurst float64
	// Logger receives events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the QoE metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

// RemoteStreams returns a Config.Streams that asks an origin's (or an
// upstream PoP's) /api/streams, for a PoP node that is not in the origin's
// process.
func RemoteStreams(client *http.Client, originURL string) func(context.Context) ([]origin.StreamInfo, error) {
	return func(ctx context.Context) ([]origin.StreamInfo, error) {
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
			Streams []origin.StreamInfo `json:"streams"`
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
	limit   *limiter
	metrics *metrics
	mux     *http.ServeMux

	mu sync.Mutex
	// cached is the last stream list and when it was taken; guarded by mu.
	cached   []origin.StreamInfo
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		qoe:   newQoEStore(),
		limit: newLimiter(cfg.BeaconRate, cfg.BeaconBurst, 65536),
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page(sub, "index.html"))
	mux.HandleFunc("GET /dashboard", s.page(sub, "dashboard.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static", staticCache(files)))
	mux.HandleFunc("GET /api/streams", s.serveStreams)
	mux.HandleFunc("GET /api/streams/{name}", s.serveStream)
	mux.HandleFunc("POST /api/qoe", s.serveBeacon)
	s.mux = mux
	return s, nil
}

// Handle registers the server's routes on mux, next to others (the PoP or
// the origin at "/").
func (s *Server) Handle(mux *http.ServeMux) {
	for _, p := range []string{"GET /{$}", "GET /dashboard", "GET /static/", "GET /api/streams", "GET /api/streams/{name}", "POST /api/qoe"} {
		mux.Handle(p, s.mux)
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
	origin.StreamInfo
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
func (s *Server) streams(ctx context.Context) ([]origin.StreamInfo, error) {
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
		views = append(views, s.view(st, now))
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
func (s *Server) listOr502(w http.ResponseWriter, r *http.Request) ([]origin.StreamInfo, bool) {
	list, err := s.streams(r.Context())
	if err != nil {
		s.log.Warn("stream list", "error", err)
		http.Error(w, "stream list unavailable", http.StatusBadGateway)
		return nil, false
	}
	return list, true
}

// view is st with the players' QoE and the PoP's cache figures.
func (s *Server) view(st origin.StreamInfo, now time.Time) StreamView {
	v := StreamView{StreamInfo: st, QoE: s.qoe.figures(st.Name, now)}
	v.Viewers = v.QoE.Viewers
	if s.cfg.PoP != nil {
		ps := s.cfg.PoP(st.Name)
		v.PoP = &PoPStats{Requests: ps.Requests, HitRatio: ps.HitRatio(), OriginFetches: ps.OriginFetches}
	}
	return v
}

// Package origin is the datacenter cache: it packages published streams
// (through packager) into an in-memory sliding window per rendition and
// serves them over HTTP as HLS and MPEG-DASH, both manifests describing the
// same CMAF files.
package origin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrStreamBusy is returned by Publish when the stream already has a publisher.
var ErrStreamBusy = errors.New("stream is already being published")

// Config configures a Server.
type Config struct {
	// Window is how much media the playlists and the MPD describe per
	// rendition (the DASH timeShiftBufferDepth). Zero means 30 s. Segments
	// that leave it stay retrievable for another Window plus one segment,
	// as RFC 8216bis section 6.2.2 asks, then are dropped.
	Window time.Duration
	// SegmentDuration is the target segment duration. Zero means 1 s.
	SegmentDuration time.Duration
	// ChunkDuration is the CMAF chunk duration inside segments. Zero means 250 ms.
	ChunkDuration time.Duration
	// Linger is how long an ended stream stays listed (its playlists carry
	// EXT-X-ENDLIST) before it is dropped. Zero means Window.
	Linger time.Duration
	// ReconnectWindow is how long a stream whose publisher was lost
	// (Session.Drop: the connection broke without the publisher
	// unpublishing) stays live, its playlists open, for the publisher to
	// come back: players wait at the live edge instead of ending. A
	// publisher back in time resumes the stream, or, with other settings,
	// publishes the next Period of the same DASH presentation. Zero means
	// 10 s; negative means the stream ends at once.
	ReconnectWindow time.Duration
	// Logger receives stream events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the origin's Prometheus metrics. Nil means they
	// are kept but not registered.
	Registerer prometheus.Registerer
}

// Server is the origin: it implements the ingest side (Publish) and serves
// HTTP (ServeHTTP). It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
	// manifestCacheControl is the Cache-Control of playlists and MPDs.
	manifestCacheControl string

	mu sync.Mutex
	// streams maps names to streams, live or lingering; guarded by mu.
	streams map[string]*stream
	// replaced holds, by name and epoch, the ended instances of a name
	// that a new epoch took over, until their linger ends: players and
	// edges still on one read its files (their playlists end with
	// ENDLIST) instead of 404s. Guarded by mu.
	replaced map[string]*stream
	closed   bool // guarded by mu
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Second
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = time.Second
	}
	if cfg.ChunkDuration <= 0 {
		cfg.ChunkDuration = 250 * time.Millisecond
	}
	if cfg.Linger <= 0 {
		cfg.Linger = cfg.Window
	}
	if cfg.ReconnectWindow == 0 {
		cfg.ReconnectWindow = 10 * time.Second
	}
	if cfg.Window < 3*cfg.SegmentDuration {
		return nil, fmt.Errorf("origin: Window %v must hold at least 3 segments of %v", cfg.Window, cfg.SegmentDuration)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  m,
		streams:  make(map[string]*stream),
		replaced: make(map[string]*stream),
	}
	s.mux = s.routes()
	s.manifestCacheControl = manifestCacheControl(cfg.SegmentDuration)
	return s, nil
}

// Publish starts (or resumes) the stream name with the given tracks. It is
// the ingest.Handler method; the caller adapts the return type.
func (s *Server) Publish(name string, tracks []codecs.Codec) (*Session, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("origin: shutting down")
	}
	st := s.streams[name]
	if st != nil {
		st.mu.Lock()
		busy := st.session != nil
		st.mu.Unlock()
		if busy {
			return nil, fmt.Errorf("%w: %s", ErrStreamBusy, name)
		}
	}
	sess, err := newSession(s, st, name, tracks, now)
	if err != nil {
		return nil, err
	}
	switch {
	case st == sess.st:
		st.stopTimer() // resumed
	case st != nil:
		// Replaced by a new instance: the old one ends, if it was waiting
		// for its publisher, and lingers; its timer runs on.
		st.mu.Lock()
		if !st.snap.Load().ended {
			s.endLocked(st, now)
		}
		st.mu.Unlock()
		s.replaced[st.name+"/"+st.epoch] = st
	}
	s.streams[name] = sess.st
	s.metrics.publishes.Inc()
	return sess, nil
}

// instance returns the instance epoch of the stream called name: the
// current one or one replaced and lingering; nil for none.
func (s *Server) instance(name, epoch string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[name]; st != nil && st.epoch == epoch {
		return st
	}
	return s.replaced[name+"/"+epoch]
}

// stream returns the stream called name, or nil.
func (s *Server) stream(name string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[name]
}

// list returns the streams sorted by name.
func (s *Server) list() []*stream {
	s.mu.Lock()
	out := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// forget drops st if it is still the stream registered under its name,
// or a replaced instance. An instance that a later one continues keeps
// its media playlists, without its segments, while the chain goes on:
// its HLS players are still on them (playlist_bridge.go). The chain's
// remains go with its last instance.
func (s *Server) forget(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.gone.Store(true)
	if st.succ.Load() != nil && !newestOf(st).gone.Load() {
		st.strip()
		s.trimRemainsLocked(st.name)
		return
	}
	delete(s.replaced, st.name+"/"+st.epoch)
	for key, p := range s.replaced {
		if p.name == st.name && p.gone.Load() && newestOf(p).gone.Load() {
			delete(s.replaced, key)
		}
	}
	if s.streams[st.name] == st {
		delete(s.streams, st.name)
		s.log.Info("stream dropped", "stream", st.name)
	}
}

// maxRemains bounds the dropped instances of one name kept for their
// playlists: a publisher changing its setup again and again does not
// grow the origin. Players on an older one get 404.
const maxRemains = 16

// trimRemainsLocked drops the oldest dropped instances of name beyond
// maxRemains. The caller holds s.mu.
func (s *Server) trimRemainsLocked(name string) {
	for {
		var oldest *stream
		n := 0
		for _, p := range s.replaced {
			if p.name == name && p.gone.Load() {
				n++
				if oldest == nil || p.epochMillis < oldest.epochMillis {
					oldest = p
				}
			}
		}
		if n <= maxRemains {
			return
		}
		delete(s.replaced, oldest.name+"/"+oldest.epoch)
	}
}

// newestOf returns the last instance of the chain that continues st.
func newestOf(st *stream) *stream {
	for succ := st.succ.Load(); succ != nil; succ = st.succ.Load() {
		st = succ.to
	}
	return st
}

// Close ends every stream's publisher session, and the streams waiting for
// a lost publisher, and stops the timers; the HTTP side keeps answering
// from what is in memory until its server stops.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	streams := make([]*stream, 0, len(s.streams)+len(s.replaced))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	for _, st := range s.replaced {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		st.mu.Lock()
		sess := st.session
		st.mu.Unlock()
		if sess != nil {
			sess.Close()
		}
		s.endLost(st)
		st.stopTimer()
	}
}

// stopTimer cancels a pending drop of the stream.
func (st *stream) stopTimer() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopTimerLocked()
}

// stopTimerLocked is stopTimer for a caller holding st.mu.
func (st *stream) stopTimerLocked() {
	if st.endTimer != nil {
		st.endTimer.Stop()
		st.endTimer = nil
	}
}

// SegmentDuration returns the target segment duration in use.
func (s *Server) SegmentDuration() time.Duration { return s.cfg.SegmentDuration }

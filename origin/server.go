// Package origin is the datacenter cache: it packages published streams
// (through packager) into an in-memory sliding window per rendition and
// serves them over HTTP as HLS and MPEG-DASH, both manifests describing the
// same CMAF files.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/store"
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
	// Access, when not nil, gives a stream's access rules, which the
	// origin sends on every response of the stream for PoPs to check at
	// the edge (layout.AccessHeader). Nil means every stream is public: no
	// token, every network.
	Access func(stream string) Access
	// Protection, when not nil, encrypts the streams it chooses
	// (protect.go) and delivers their keys. Nil means every stream is
	// clear.
	Protection *Protection
	// Directory, when not nil, is the fleet's stream directory: the origin
	// agrees there on each new stream instance's epoch and says which
	// streams it serves (directory.go). Nil means the origin is alone.
	Directory Directory
	// Logger receives stream events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the origin's Prometheus metrics. Nil means they
	// are kept but not registered.
	Registerer prometheus.Registerer
	// Archive, when not nil, archives every stream instance as it runs
	// (archive.go): all its renditions, the ladder's included, without
	// ever blocking (the Writer queues). Nil archives nothing.
	Archive *archive.Writer
	// ArchiveStore, when not nil, is the store the archive is in, read
	// back to serve what left the memory window (DVR, VOD and clips:
	// archive_serve.go, vod*.go), /api/vods and /api/clips. Nil serves
	// none of those.
	ArchiveStore store.Store
	// DVR, when positive, is how far back players may rewind a live
	// stream, in the manifests of its DVR window (dvr.go); it needs
	// Archive and ArchiveStore, and must be longer than Window. Zero means
	// no DVR window.
	DVR time.Duration
	// APIToken, when set, must come as "Authorization: Bearer APIToken"
	// with every request that changes the archive: POST /api/clips and
	// DELETE /api/clips/{id}. One without it gets a 401 and a WARN line.
	// Empty means anyone who reaches the origin may make and delete
	// clips (and a clip keeps its epoch past the retention).
	APIToken string
}

// Server is the origin: it implements the ingest side (Publish) and serves
// HTTP (ServeHTTP). It is safe for concurrent use.
//
// A Server is the registry of its streams (server_registry.go), their
// HTTP front (server_http.go, server_partial.go, api.go), and their
// settings and metrics. Each stream owns its state and its lifecycle
// (stream*.go), and its manifests are pure functions of its snapshots
// (playlist_hls.go, playlist_bridge.go, manifest_dash.go).
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// env is what the server gives each stream it makes.
	env *streamEnv
	mux *http.ServeMux
	// manifestCacheControl is the Cache-Control of playlists and MPDs.
	manifestCacheControl string

	// mu guards the registry: streams, replaced and closed. It is taken
	// before a stream's mu, never while one is held.
	mu sync.Mutex
	// streams maps names to streams, live or lingering; guarded by mu.
	streams map[string]*stream
	// replaced holds, by name and epoch (replacedKey), the ended
	// instances of a name that a new epoch took over, until their linger
	// ends: players and edges still on one read its files (their
	// playlists end with ENDLIST) instead of 404s. It also holds the
	// remains of instances dropped while a later instance continues them
	// (Server.forget). Guarded by mu.
	replaced map[string]*stream
	closed   bool // guarded by mu

	// vod serves what the archive holds (vod.go); nil without
	// Config.ArchiveStore.
	vod *vodServer
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
	prot, err := newProtector(cfg.Protection, cfg.SegmentDuration)
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
	s.env = &streamEnv{cfg: cfg, metrics: m, log: cfg.Logger, forget: s.forget, prot: prot, ladderTag: newLadderTag()}
	if s.vod, err = newVODServer(s); err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	s.mux = s.routes()
	s.manifestCacheControl = manifestCacheControl(cfg.SegmentDuration)
	return s, nil
}

// Publish starts (or resumes) the stream name with the given tracks, its
// first frame arriving now.
func (s *Server) Publish(name string, tracks []codecs.Codec) (*Session, error) {
	return s.PublishAt(name, tracks, time.Now())
}

// PublishAt starts (or resumes) the stream name with the given tracks,
// whose first frame arrived at began: the wall-clock time of media time 0
// (PROGRAM-DATE-TIME, availabilityStartTime). It is the ingest.Handler
// method; the caller adapts the return type.
func (s *Server) PublishAt(name string, tracks []codecs.Codec, began time.Time) (*Session, error) {
	now := began
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("origin: shutting down")
	}
	st := s.streams[name]
	if st != nil && st.publishing() {
		return nil, fmt.Errorf("%w: %s", ErrStreamBusy, name)
	}
	epoch := int64(0) // a new instance's: agreed in the directory
	var keys *streamKeys
	encrypts := s.env.prot.encrypts(name)
	if (s.cfg.Directory != nil || encrypts) && (st == nil || !sameSetup(st, tracks)) {
		proposed := now.Truncate(time.Millisecond).UnixMilli()
		if st != nil {
			proposed = max(proposed, st.epochMillis+1)
		}
		s.mu.Unlock() // not held across the directory's round trip
		agreed, err := s.agreedEpoch(name, tracks, proposed)
		if err == nil && encrypts {
			keys, err = s.env.prot.newStreamKeys(context.Background(), name, strconv.FormatInt(agreed, 36))
		}
		s.mu.Lock()
		if err != nil {
			return nil, err
		}
		if cur := s.streams[name]; cur != st || s.closed || (cur != nil && cur.publishing()) {
			return nil, fmt.Errorf("%w: %s (published meanwhile)", ErrStreamBusy, name)
		}
		epoch = agreed
	}
	sess, err := newSession(s.env, st, name, tracks, now, epoch, keys)
	if err != nil {
		return nil, err
	}
	switch {
	case st == sess.st:
		st.stopTimer() // resumed
	case st != nil:
		// Replaced by a new instance: the old one ends, if it was waiting
		// for its publisher, and lingers; its timer runs on.
		st.supersede(now)
		s.replaced[replacedKey(st.name, st.epoch)] = st
	}
	s.streams[name] = sess.st
	s.metrics.publishes.Inc()
	if s.cfg.Directory != nil {
		s.cfg.Directory.Serving(name, sess.st.epoch, 0)
	}
	return sess, nil
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
		st.close()
	}
	s.env.prot.wait()
}

// SegmentDuration returns the target segment duration in use.
func (s *Server) SegmentDuration() time.Duration { return s.cfg.SegmentDuration }

package directory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/internal/promreg"
)

// ViewConfig configures a View.
type ViewConfig struct {
	// Client talks to etcd. Required; the View does not close it.
	Client *clientv3.Client
	// Prefix is the directory's key prefix, ending with "/". Zero means
	// DefaultPrefix.
	Prefix string
	// ProgressInterval is the time between two requests asking etcd to
	// confirm that the view is current. Zero means 5 s.
	ProgressInterval time.Duration
	// StaleAfter is how long the view goes unconfirmed before it counts
	// as stale: it is logged, Health says so, Place refuses, and the view
	// loads the directory again on a new watch. Zero means 3 ×
	// ProgressInterval.
	StaleAfter time.Duration
	// RequestTimeout bounds each request that reads the directory. Zero
	// means 3 s.
	RequestTimeout time.Duration
	// PlacementHold is how long Place holds a placement that no origin
	// has taken up yet: the same stream is answered alike, and others
	// count it in the origins' load. Zero means 30 s.
	PlacementHold time.Duration
	// Logger receives the view's going stale and current again (once
	// each) and records it cannot read. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the metrics (directory_*). Nil means none are
	// registered.
	Registerer prometheus.Registerer
}

// Health is a View's state.
type Health struct {
	// Current says that the view follows etcd now. While it is false the
	// view keeps answering from what it had (fail static).
	Current bool
	// Confirmed is when the view was last known to be current; zero
	// before it was ever loaded.
	Confirmed time.Time
	// Err says why the view is not current.
	Err error
}

// View is a PoP's or the balancer's side of the directory: Run loads the
// directory and watches it, keeping in memory an immutable Snapshot that
// lookups read without locks, allocations or requests. When etcd cannot
// be reached the view keeps its last snapshot, logs it once and says so
// in Health; it loads the directory again when etcd is back, or when its
// watch falls behind a compaction. Its methods are safe for concurrent
// use; Run must be called once.
type View struct {
	cfg     ViewConfig
	keys    schema
	log     *slog.Logger
	seed    maphash.Seed // of the snapshots' shards
	snap    atomic.Pointer[Snapshot]
	metrics viewMetrics
	follow  *follower

	mu   sync.Mutex // protects held
	held map[string]heldPlacement
}

// NewView validates cfg and returns a View, empty until Run loads it.
func NewView(cfg ViewConfig) (*View, error) {
	if cfg.Client == nil {
		return nil, errors.New("directory view: Client is required")
	}
	prefix, err := checkPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("directory view: %w", err)
	}
	cfg.Prefix = prefix
	cfg.ProgressInterval, cfg.StaleAfter, cfg.RequestTimeout = followTimes(cfg.ProgressInterval, cfg.StaleAfter, cfg.RequestTimeout)
	if cfg.PlacementHold <= 0 {
		cfg.PlacementHold = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	v := &View{
		cfg:  cfg,
		keys: schema{prefix},
		log:  cfg.Logger,
		held: make(map[string]heldPlacement),
	}
	v.metrics = newViewMetrics(v)
	// The view loads the keys it reads, and no others (epochs/ and
	// revoked/ may be many); it watches the whole prefix, whose other
	// keys change seldom.
	v.follow = newFollower(followConfig{
		client: cfg.Client, what: "directory view", stale: "etcd unreachable; serving the last view",
		load: []string{v.keys.originPrefix(), v.keys.streamsPrefix()}, watch: prefix,
		progressInterval: cfg.ProgressInterval, staleAfter: cfg.StaleAfter, requestTimeout: cfg.RequestTimeout,
		log: cfg.Logger, restarts: v.metrics.watchRestarts,
	})
	v.seed = maphash.MakeSeed()
	v.snap.Store(emptySnapshot(v.seed))
	if err := promreg.Register(cfg.Registerer, v.metrics.collectors()...); err != nil {
		return nil, fmt.Errorf("directory view: %w", err)
	}
	return v, nil
}

// Snapshot returns the view as it is now.
func (v *View) Snapshot() *Snapshot { return v.snap.Load() }

// Lookup returns the origins serving stream (see Snapshot.Lookup).
func (v *View) Lookup(stream string) (primary, backup Origin, ok bool) {
	return v.snap.Load().Lookup(stream)
}

// Changed returns a channel closed when a lookup's answer may have
// changed (see Snapshot.Changed).
func (v *View) Changed() <-chan struct{} { return v.snap.Load().changed }

// Ready returns a channel closed once the directory was first loaded.
func (v *View) Ready() <-chan struct{} { return v.follow.Ready() }

// Health returns the view's state and a channel closed when Current
// flips.
func (v *View) Health() (Health, <-chan struct{}) { return v.follow.Health() }

// Staleness is zero while the view is current, else the time since it
// last was (or since the View was made, if it never was).
func (v *View) Staleness() time.Duration { return v.follow.Staleness() }

// Run follows the directory until ctx is done, then returns nil. It
// returns an error wrapping ErrClientClosed if the client is closed
// under it.
func (v *View) Run(ctx context.Context) error {
	return v.follow.run(ctx, func() followSink { return &viewSink{v, newModel(v.keys, v.log, v.seed)} })
}

// The prefixes of the keys a view reads.
func (s schema) originPrefix() string  { return s.prefix + "origins/" }
func (s schema) streamsPrefix() string { return s.prefix + "streams/" }

// viewSink feeds a model read by a follower to the view.
type viewSink struct {
	v *View
	m *model
}

func (s *viewSink) apply(kv *mvccpb.KeyValue, deleted bool) { s.m.apply(kv, deleted) }

// publish makes the model the view, when it changed. Those awaiting
// Changed are woken when a route changed.
func (s *viewSink) publish(rev int64) {
	if !s.m.changedSince() {
		return
	}
	prev := s.v.snap.Load()
	next := s.m.snapshot(rev, prev)
	s.v.snap.Store(next)
	if next.changed != prev.changed {
		close(prev.changed)
	}
}

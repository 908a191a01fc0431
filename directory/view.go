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
	// as stale: it is logged, Health says so, and Place refuses. Zero
	// means 3 × ProgressInterval.
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
	started time.Time
	seed    maphash.Seed // of the snapshots' shards
	snap    atomic.Pointer[Snapshot]
	metrics viewMetrics

	ready     chan struct{} // closed once the directory was first loaded
	readyOnce sync.Once

	mu       sync.Mutex // protects the fields below
	health   Health
	healthCh chan struct{} // closed and replaced when health.Current flips
	held     map[string]heldPlacement
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
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 5 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 3 * cfg.ProgressInterval
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.PlacementHold <= 0 {
		cfg.PlacementHold = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	v := &View{
		cfg:      cfg,
		keys:     schema{prefix},
		log:      cfg.Logger,
		started:  time.Now(),
		ready:    make(chan struct{}),
		healthCh: make(chan struct{}),
		held:     make(map[string]heldPlacement),
	}
	v.metrics = newViewMetrics(v)
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
func (v *View) Ready() <-chan struct{} { return v.ready }

// Health returns the view's state and a channel closed when Current
// flips.
func (v *View) Health() (Health, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.health, v.healthCh
}

// Staleness is zero while the view is current, else the time since it
// last was (or since the View was made, if it never was).
func (v *View) Staleness() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.health.Current:
		return 0
	case v.health.Confirmed.IsZero():
		return time.Since(v.started)
	default:
		return time.Since(v.health.Confirmed)
	}
}

// setCurrent notes that the view was current at t.
func (v *View) setCurrent(t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	was := v.health
	v.health = Health{Current: true, Confirmed: t}
	if !was.Current {
		if !was.Confirmed.IsZero() {
			v.log.Info("directory view: current again", "stale_for", t.Sub(was.Confirmed).Round(time.Millisecond))
		}
		close(v.healthCh)
		v.healthCh = make(chan struct{})
	}
}

// setStale notes that the view may not be current, because of err.
func (v *View) setStale(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	was := v.health
	v.health.Current, v.health.Err = false, err
	if was.Current || was.Confirmed.IsZero() && was.Err == nil {
		v.log.Warn("directory view: etcd unreachable; serving the last view", "error", err)
		close(v.healthCh)
		v.healthCh = make(chan struct{})
	}
}

// errUnconfirmed says that etcd confirmed nothing for StaleAfter.
var errUnconfirmed = errors.New("etcd confirmed nothing for a while")

// Run follows the directory until ctx is done, then returns nil. It
// returns an error wrapping ErrClientClosed if the client is closed
// under it.
func (v *View) Run(ctx context.Context) error {
	b := newBackoff(100*time.Millisecond, v.cfg.ProgressInterval)
	for {
		began := time.Now()
		err := v.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if v.cfg.Client.Ctx().Err() != nil {
			return fmt.Errorf("directory view: %w", ErrClientClosed)
		}
		if time.Since(began) > v.cfg.StaleAfter {
			b.reset() // it worked for a while
		}
		v.metrics.watchRestarts.Inc()
		v.setStale(err)
		if !b.wait(ctx) {
			return nil
		}
	}
}

// follow loads the directory, then watches it until the watch fails (the
// error says why) or ctx is done (nil).
func (v *View) follow(ctx context.Context) error {
	// A member without a leader (no quorum) ends the watch rather than
	// keep it silently, and refuses reads at once.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	m := newModel(v.keys, v.log, v.seed)
	rev, err := v.load(wctx, m)
	if err != nil {
		return err
	}
	v.publish(m, rev)
	v.setCurrent(time.Now())
	v.readyOnce.Do(func() { close(v.ready) })

	watch := v.cfg.Client.Watch(wctx, v.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	progress := time.NewTicker(v.cfg.ProgressInterval)
	defer progress.Stop()
	stale := time.NewTimer(v.cfg.StaleAfter)
	defer stale.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-watch:
			for {
				if !ok {
					return errors.New("watch closed")
				}
				if err := wr.Err(); err != nil {
					return fmt.Errorf("watch: %w", err)
				}
				for _, ev := range wr.Events {
					m.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete)
				}
				rev = max(rev, wr.Header.Revision)
				more := false
				select { // take what else is there before publishing
				case wr, ok = <-watch:
					more = true
				default:
				}
				if !more {
					break
				}
			}
			if m.changedSince() {
				v.publish(m, rev)
			}
			v.setCurrent(time.Now())
			stale.Reset(v.cfg.StaleAfter)
		case <-progress.C:
			// The request waits for the watch's stream, which waits for
			// a connection: bound it. (wctx's metadata picks the stream.)
			pctx, cancel := context.WithTimeout(wctx, v.cfg.ProgressInterval)
			if err := v.cfg.Client.RequestProgress(pctx); err != nil {
				v.log.Debug("directory view: progress request failed", "error", err)
			}
			cancel()
		case <-stale.C:
			v.setStale(errUnconfirmed)
		}
	}
}

// pageSize is the most keys one read of the directory returns.
const pageSize = 1000

// load reads the whole directory into m, in pages all at one revision,
// and returns that revision.
func (v *View) load(ctx context.Context, m *model) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(v.keys.prefix)
	key, rev := v.keys.prefix, int64(0)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, v.cfg.RequestTimeout)
		resp, err := v.cfg.Client.Get(rctx, key, opts...)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("load the directory: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			m.apply(kv, false)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// publish makes m the view. Those awaiting Changed are woken when a
// route changed.
func (v *View) publish(m *model, rev int64) {
	prev := v.snap.Load()
	next := m.snapshot(rev, prev)
	v.snap.Store(next)
	if next.changed != prev.changed {
		close(prev.changed)
	}
}

package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// followConfig configures a follower; every field is required.
type followConfig struct {
	client *clientv3.Client
	// what names the follower in its logs ("directory view"); stale is
	// what it logs on going stale ("etcd unreachable; serving the last
	// view").
	what, stale string
	// load are the prefixes loaded; watch is the prefix watched, which
	// holds them all (other keys it sees are the sink's to ignore).
	load  []string
	watch string
	// progressInterval, staleAfter and requestTimeout are as in
	// ViewConfig.
	progressInterval, staleAfter, requestTimeout time.Duration
	log                                          *slog.Logger
	// restarts counts the loads after the first.
	restarts prometheus.Counter
}

// followTimes returns a follower's progress interval, stale time and
// request timeout, as ViewConfig and RevocationsConfig document them:
// zero or less means 5 s, 3 × the progress interval, 3 s.
func followTimes(progress, stale, request time.Duration) (time.Duration, time.Duration, time.Duration) {
	if progress <= 0 {
		progress = 5 * time.Second
	}
	if stale <= 0 {
		stale = 3 * progress
	}
	if request <= 0 {
		request = 3 * time.Second
	}
	return progress, stale, request
}

// followSink receives what a follower reads. A follower asks for a new
// one at each load, and calls it from its run goroutine only.
type followSink interface {
	// apply puts or deletes one key.
	apply(kv *mvccpb.KeyValue, deleted bool)
	// publish makes what was applied since the last publish visible, as
	// of revision rev; it is called after the load, and after each batch
	// of watch events.
	publish(rev int64)
}

// follower keeps a sink up to date with keys of etcd: it loads them, then
// watches them. When the watch fails (etcd unreachable, no quorum,
// compaction) it loads them again, after a backoff; meanwhile the sink
// keeps what it had (fail static). It asks etcd every progressInterval to
// confirm that it is current; after staleAfter without a word it counts
// as stale and loads the keys again, on a new watch. It logs going stale
// and coming back once each. Its
// methods are safe for concurrent use; run must be called once.
type follower struct {
	cfg     followConfig
	started time.Time
	follows int // the follows begun; run's goroutine alone uses it

	ready     chan struct{} // closed once the keys were first loaded
	readyOnce sync.Once

	mu       sync.Mutex // protects the fields below
	health   Health
	healthCh chan struct{} // closed and replaced when health.Current flips
}

func newFollower(cfg followConfig) *follower {
	return &follower{cfg: cfg, started: time.Now(), ready: make(chan struct{}), healthCh: make(chan struct{})}
}

// Ready returns a channel closed once the keys were first loaded.
func (f *follower) Ready() <-chan struct{} { return f.ready }

// Health returns the state and a channel closed when Current flips.
func (f *follower) Health() (Health, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health, f.healthCh
}

// Staleness is zero while current, else the time since it last was (or
// since the follower was made, if it never was).
func (f *follower) Staleness() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.health.Current:
		return 0
	case f.health.Confirmed.IsZero():
		return time.Since(f.started)
	default:
		return time.Since(f.health.Confirmed)
	}
}

// setCurrent notes that the follower was current at t.
func (f *follower) setCurrent(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.health
	f.health = Health{Current: true, Confirmed: t}
	if !was.Current {
		if !was.Confirmed.IsZero() {
			f.cfg.log.Info(f.cfg.what+": current again", "stale_for", t.Sub(was.Confirmed).Round(time.Millisecond))
		}
		close(f.healthCh)
		f.healthCh = make(chan struct{})
	}
}

// setStale notes that the follower may not be current, because of err.
func (f *follower) setStale(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.health
	f.health.Current, f.health.Err = false, err
	if was.Current || was.Confirmed.IsZero() && was.Err == nil {
		f.cfg.log.Warn(f.cfg.what+": "+f.cfg.stale, "error", err)
		close(f.healthCh)
		f.healthCh = make(chan struct{})
	}
}

// errUnconfirmed says that etcd confirmed nothing for StaleAfter.
var errUnconfirmed = errors.New("etcd confirmed nothing for a while")

// run follows the keys until ctx is done, then returns nil, giving a
// sink made by newSink each load. It returns an error wrapping
// ErrClientClosed if the client is closed under it.
func (f *follower) run(ctx context.Context, newSink func() followSink) error {
	b := newBackoff(100*time.Millisecond, f.cfg.progressInterval)
	for {
		began := time.Now()
		err := f.follow(ctx, newSink())
		if ctx.Err() != nil {
			return nil
		}
		if f.cfg.client.Ctx().Err() != nil {
			return fmt.Errorf("%s: %w", f.cfg.what, ErrClientClosed)
		}
		if time.Since(began) > f.cfg.staleAfter {
			b.reset() // it worked for a while
		}
		f.cfg.restarts.Inc()
		f.setStale(err)
		if !b.wait(ctx) {
			return nil
		}
	}
}

// follow loads the keys into sink, then watches them until the watch
// fails (the error says why) or ctx is done (nil).
func (f *follower) follow(ctx context.Context, sink followSink) error {
	// A member without a leader (no quorum) ends the watch rather than
	// keep it silently, and refuses reads at once. The client puts the
	// watches of a context with the same metadata on one gRPC stream: a
	// key of each follow's own gives it a new one.
	f.follows++
	wctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "golivestream-follow", f.cfg.what+" "+strconv.Itoa(f.follows))
	wctx, cancel := context.WithCancel(wctx)
	defer cancel()
	rev, err := f.load(wctx, sink)
	if err != nil {
		return err
	}
	sink.publish(rev)
	f.setCurrent(time.Now())
	f.readyOnce.Do(func() { close(f.ready) })

	watch := f.cfg.client.Watch(wctx, f.cfg.watch, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	progress := time.NewTicker(f.cfg.progressInterval)
	defer progress.Stop()
	stale := time.NewTimer(f.cfg.staleAfter)
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
					sink.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete)
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
			sink.publish(rev)
			f.setCurrent(time.Now())
			stale.Reset(f.cfg.staleAfter)
		case <-progress.C:
			// While etcd is unreachable each request below takes its
			// whole timeout, so a tick is always waiting when the loop
			// selects again, and select picks among ready cases at
			// random: the stale timer, once fired, comes first, or the
			// follower could go on without noticing (seen: 30 s).
			select {
			case <-stale.C:
				return errUnconfirmed
			default:
			}
			// The request waits for the watch's stream, which waits for
			// a connection: bound it, within the interval. (wctx's
			// metadata picks the stream.)
			pctx, cancel := context.WithTimeout(wctx, min(f.cfg.requestTimeout, f.cfg.progressInterval))
			if err := f.cfg.client.RequestProgress(pctx); err != nil {
				f.cfg.log.Debug(f.cfg.what+": progress request failed", "error", err)
			}
			cancel()
		case <-stale.C:
			// A watch that says nothing while etcd is back can be stuck
			// on a stream that will not recover (seen with a member
			// stopped and started again): watch anew, on a new stream.
			return errUnconfirmed
		}
	}
}

// pageSize is the most keys one read returns.
const pageSize = 1000

// load reads every key under the prefixes to load into sink, in pages
// all at one revision, and returns that revision.
func (f *follower) load(ctx context.Context, sink followSink) (int64, error) {
	rev := int64(0)
	for _, prefix := range f.cfg.load {
		end := clientv3.GetPrefixRangeEnd(prefix)
		key := prefix
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			rctx, cancel := context.WithTimeout(ctx, f.cfg.requestTimeout)
			resp, err := f.cfg.client.Get(rctx, key, opts...)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("load %s: %w", prefix, err)
			}
			if rev == 0 {
				rev = resp.Header.Revision
			}
			for _, kv := range resp.Kvs {
				sink.apply(kv, false)
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return rev, nil
}

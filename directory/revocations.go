package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/internal/promreg"
)

// Revoked sessions (issue #23) are kept under the directory's prefix,
//
//	revoked/{session id}       Revocation: revoked, expires, reason
//
// each key under a lease of its own, as long as the longest lifetime of
// the tokens that may carry the session (Revoke's ttl): when it ends, no
// token of the session admits anyone anyway, and the key goes, so the
// list does not grow forever. PoPs follow the keys (Revocations) and
// deny the tokens of the sessions listed.

const (
	// DefaultMaxSessions is the number of revoked sessions that a zero
	// MaxSessions in a RevocationsConfig means.
	DefaultMaxSessions = 1_000_000
	// MaxSessionLen is the length of the longest session id, in bytes: a
	// token's sid (package access) has at most 128.
	MaxSessionLen = 128
	// MaxReasonLen is the length of the longest reason, in bytes.
	MaxReasonLen = 1024
)

// Revocation is a revoked session: the value of {prefix}revoked/{id}.
// What revokes the session is the key; the value is for people.
type Revocation struct {
	// Revoked is when it was revoked.
	Revoked time.Time `json:"revoked"`
	// Expires is when the key's lease ends, and the key with it.
	Expires time.Time `json:"expires"`
	// Reason is why, in the operator's words; may be empty.
	Reason string `json:"reason,omitempty"`
}

func (s schema) revokedPrefix() string            { return s.prefix + "revoked/" }
func (s schema) revokedKey(session string) string { return s.prefix + "revoked/" + session }

// validSession reports whether id can name a revoked session.
func validSession(id string) bool { return id != "" && len(id) <= MaxSessionLen }

// Revoke revokes session id in the directory under prefix (zero:
// DefaultPrefix) for ttl, which must cover the longest lifetime of the
// tokens that carry it (a second at least): it writes {prefix}revoked/{id}
// under a lease of ttl of its own, and returns what it wrote. Revoking a
// session revoked already writes it again: the last Revoke's ttl and
// reason hold. ctx bounds the two requests.
func Revoke(ctx context.Context, cli *clientv3.Client, prefix, id string, ttl time.Duration, reason string) (Revocation, error) {
	keys, err := revocationKeys(prefix, id)
	if err != nil {
		return Revocation{}, err
	}
	switch {
	case ttl < time.Second:
		return Revocation{}, fmt.Errorf("revoke %q: ttl %v, want 1s at least", id, ttl)
	case len(reason) > MaxReasonLen:
		return Revocation{}, fmt.Errorf("revoke %q: a reason of %d bytes, want at most %d", id, len(reason), MaxReasonLen)
	}
	now := time.Now()
	lease, err := cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke %q: grant lease: %w", id, err)
	}
	// etcd may raise the TTL to its minimum; never lowers it.
	rec := Revocation{Revoked: now.UTC(), Expires: now.Add(time.Duration(lease.TTL) * time.Second).UTC(), Reason: reason}
	if _, err := cli.Put(ctx, keys.revokedKey(id), encode(rec), clientv3.WithLease(lease.ID)); err != nil {
		// The lease holds nothing: let it go now rather than at its end.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_, rerr := cli.Revoke(rctx, lease.ID)
		return Revocation{}, errors.Join(fmt.Errorf("revoke %q: %w", id, err), ignoreLeaseNotFound(rerr))
	}
	return rec, nil
}

// Unrevoke takes session id off the revoked sessions in the directory
// under prefix (zero: DefaultPrefix), with its lease, and reports whether
// it was there. ctx bounds the two requests.
func Unrevoke(ctx context.Context, cli *clientv3.Client, prefix, id string) (bool, error) {
	keys, err := revocationKeys(prefix, id)
	if err != nil {
		return false, err
	}
	resp, err := cli.Delete(ctx, keys.revokedKey(id), clientv3.WithPrevKV())
	if err != nil {
		return false, fmt.Errorf("unrevoke %q: %w", id, err)
	}
	if len(resp.PrevKvs) == 0 {
		return false, nil
	}
	if lease := clientv3.LeaseID(resp.PrevKvs[0].Lease); lease != 0 {
		if _, err := cli.Revoke(ctx, lease); ignoreLeaseNotFound(err) != nil {
			// The key is gone, which is what counts; the lease ends on
			// its own.
			return true, fmt.Errorf("unrevoke %q: the key is deleted, its lease not: %w", id, err)
		}
	}
	return true, nil
}

// revocationKeys checks a revocation's prefix and session id.
func revocationKeys(prefix, id string) (schema, error) {
	p, err := checkPrefix(prefix)
	if err != nil {
		return schema{}, err
	}
	if !validSession(id) {
		return schema{}, fmt.Errorf("session id of %d bytes: want 1 to %d", len(id), MaxSessionLen)
	}
	return schema{p}, nil
}

// ignoreLeaseNotFound returns err, or nil when it says that the lease
// has ended already.
func ignoreLeaseNotFound(err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// RevocationsConfig configures a Revocations.
type RevocationsConfig struct {
	// Client talks to etcd. Required; Revocations does not close it.
	Client *clientv3.Client
	// Prefix is the directory's key prefix, ending with "/". Zero means
	// DefaultPrefix.
	Prefix string
	// Apply receives the changes of the list: after each load, the
	// whole list; then what each batch of events changed. Required: a
	// PoP makes them its Verifier's RevocationSet (access.RevocationSet's
	// Change costs a change's size, not the list's). It is called from
	// Run's goroutine, one call at a time; the slices are the callee's.
	Apply func(RevocationChange)
	// MaxSessions bounds the sessions held: beyond it, revocations are
	// ignored (logged, and counted by directory_revocations_ignored);
	// those still there when the list is loaded again (after its watch
	// failed) are taken while there is room. Zero means
	// DefaultMaxSessions (1 000 000), which with ids of 40 bytes hold
	// 120 MB here and 56 MB more in a Verifier's set
	// (BenchmarkRevocationsList, BenchmarkNewRevocationSet in access).
	// Revocations go when their lease ends, so a fleet comes near it
	// only by revoking a million sessions within the lifetime of its
	// tokens.
	MaxSessions int
	// ProgressInterval is the time between two requests asking etcd to
	// confirm that the list is current. Zero means 5 s.
	ProgressInterval time.Duration
	// StaleAfter is how long the list goes unconfirmed before it counts
	// as stale: it is logged, Health says so, and it is loaded again on a
	// new watch; it stays in force meanwhile. Zero means 3 ×
	// ProgressInterval.
	StaleAfter time.Duration
	// RequestTimeout bounds each request that reads the list. Zero means
	// 3 s.
	RequestTimeout time.Duration
	// Logger receives each change of the list, its going stale and
	// current again (once each), and the sessions ignored. Nil means
	// discard.
	Logger *slog.Logger
	// Registerer receives the metrics (directory_revocations*). Nil
	// means none are registered.
	Registerer prometheus.Registerer
}

// RevocationChange is a change of the revoked sessions.
type RevocationChange struct {
	// Reset says that Added is the whole list, which replaces the one
	// applied before (Removed is empty): the first change, and the first
	// after each load.
	Reset bool
	// Added are the sessions revoked, Removed those no longer revoked
	// (unrevoked, or their lease ended). No session is in both.
	Added, Removed []string
}

// Revocations follows the revoked sessions in the directory (Revoke),
// for a PoP: Run loads them and watches them, and gives Apply each
// change, within a moment of the change in etcd. When etcd cannot be
// reached the last list stays in force: Run logs it once, says so in
// Health, and loads the list again when etcd is back, or when its watch
// falls behind a compaction. Its methods are safe for concurrent use;
// Run must be called once.
type Revocations struct {
	cfg     RevocationsConfig
	keys    schema
	follow  *follower
	metrics revocationsMetrics

	held, ignored atomic.Int64 // sessions in the last list Applied, and left out of it
}

// NewRevocations validates cfg and returns a Revocations, which applies
// nothing until Run loads the list.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("revocations: Client is required")
	case cfg.Apply == nil:
		return nil, errors.New("revocations: Apply is required")
	case cfg.MaxSessions < 0:
		return nil, fmt.Errorf("revocations: MaxSessions %d < 0", cfg.MaxSessions)
	}
	prefix, err := checkPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	cfg.Prefix = prefix
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	cfg.ProgressInterval, cfg.StaleAfter, cfg.RequestTimeout = followTimes(cfg.ProgressInterval, cfg.StaleAfter, cfg.RequestTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{cfg: cfg, keys: schema{prefix}}
	r.metrics = newRevocationsMetrics(r)
	watched := r.keys.revokedPrefix()
	r.follow = newFollower(followConfig{
		client: cfg.Client, what: "revocations", stale: "etcd unreachable; the last list stays in force",
		load: []string{watched}, watch: watched,
		progressInterval: cfg.ProgressInterval, staleAfter: cfg.StaleAfter, requestTimeout: cfg.RequestTimeout,
		log: cfg.Logger, restarts: r.metrics.watchRestarts,
	})
	if err := promreg.Register(cfg.Registerer, r.metrics.collectors()...); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	return r, nil
}

// Run follows the revoked sessions until ctx is done, then returns nil.
// It returns an error wrapping ErrClientClosed if the client is closed
// under it.
func (r *Revocations) Run(ctx context.Context) error {
	return r.follow.run(ctx, func() followSink {
		return &revocationSink{r: r, ids: map[string]struct{}{}, reset: true}
	})
}

// Ready returns a channel closed once the list was first loaded and
// applied.
func (r *Revocations) Ready() <-chan struct{} { return r.follow.Ready() }

// Health returns the list's state and a channel closed when Current
// flips.
func (r *Revocations) Health() (Health, <-chan struct{}) { return r.follow.Health() }

// Len returns the number of sessions in the list applied last.
func (r *Revocations) Len() int { return int(r.held.Load()) }

// revocationSink is the list as a follower reads it, from one load on.
type revocationSink struct {
	r       *Revocations
	ids     map[string]struct{}
	ignored int             // keys not in ids: over MaxSessions, or not naming a session
	reset   bool            // the next Apply gives the whole list
	pending map[string]bool // since the last Apply, unless reset: added (true) or removed
	overLog bool            // the cap was logged in this load
}

func (s *revocationSink) apply(kv *mvccpb.KeyValue, deleted bool) {
	id, ok := strings.CutPrefix(string(kv.Key), s.r.keys.revokedPrefix())
	_, held := s.ids[id]
	switch {
	case deleted && held:
		delete(s.ids, id)
		s.note(id, false)
	case deleted:
		s.ignored = max(s.ignored-1, 0) // a key never held is going
	case held:
		// Revoked again: still revoked.
	case !ok || !validSession(id):
		s.ignored++
		s.r.cfg.Logger.Warn("revocations: key ignored: not a session id", "key", string(kv.Key))
	case len(s.ids) >= s.r.cfg.MaxSessions:
		s.ignored++
		if !s.overLog {
			s.overLog = true
			s.r.cfg.Logger.Error("revocations: more revoked sessions than MaxSessions; the others are ignored", "max_sessions", s.r.cfg.MaxSessions, "session", id)
		}
	default:
		s.ids[id] = struct{}{}
		s.note(id, true)
	}
}

// note records that id was added or removed since the last Apply.
func (s *revocationSink) note(id string, added bool) {
	if s.reset {
		return // the whole list goes
	}
	if s.pending == nil {
		s.pending = map[string]bool{}
	}
	if was, ok := s.pending[id]; ok && was != added {
		delete(s.pending, id) // back as it was applied
		return
	}
	s.pending[id] = added
}

func (s *revocationSink) publish(int64) {
	s.r.ignored.Store(int64(s.ignored))
	if !s.reset && len(s.pending) == 0 {
		return
	}
	var c RevocationChange
	if c.Reset = s.reset; c.Reset {
		c.Added = make([]string, 0, len(s.ids))
		for id := range s.ids {
			c.Added = append(c.Added, id)
		}
	} else {
		for id, added := range s.pending {
			if added {
				c.Added = append(c.Added, id)
			} else {
				c.Removed = append(c.Removed, id)
			}
		}
	}
	s.r.cfg.Apply(c)
	s.r.held.Store(int64(len(s.ids)))
	s.r.cfg.Logger.Info("revocations applied", "sessions", len(s.ids), "added", len(c.Added), "removed", len(c.Removed), "reset", c.Reset, "ignored", s.ignored)
	s.reset, s.pending = false, nil
}

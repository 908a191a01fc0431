package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/internal/promreg"
)

// RegistrationConfig configures a Registration.
type RegistrationConfig struct {
	// Client talks to etcd. Required; the Registration does not close it.
	Client *clientv3.Client
	// Prefix is the directory's key prefix, ending with "/". Zero means
	// DefaultPrefix.
	Prefix string
	// ID names the origin: [A-Za-z0-9_.-]{1,64}, unique among origins.
	// Required.
	ID string
	// Zone is the origin's failure zone; placement puts a stream's
	// primary and backup in two zones when there are two. Zero means the
	// unnamed zone, shared by every origin without one.
	Zone string
	// PublicURL is the HTTP base URL of the origin server, which PoPs
	// fetch from. Required.
	PublicURL string
	// RTMPURL is the base URL publishers are sent to. Zero means the
	// origin takes no new streams: placement passes it over.
	RTMPURL string
	// TTL is the lease's time to live: how long the origin's keys outlive
	// its process. Zero means 5 s; etcd raises it to its minimum (1.5
	// election timeouts, 2 s with the defaults).
	TTL time.Duration
	// LoadInterval is the time between two writes of the load. Zero
	// means 5 s.
	LoadInterval time.Duration
	// SegmentInterval is the least time between two writes of a stream
	// record whose only change is its newest segment. Zero means 10 s.
	SegmentInterval time.Duration
	// RequestTimeout bounds each request to etcd. Zero means 3 s.
	RequestTimeout time.Duration
	// JoinWindow is how long after a stream's epoch was made another
	// origin may still adopt it (see AgreeEpoch): an encoder pushing to
	// two origins connects to both before it sends media, but its
	// connection to an origin restarted later comes when the stream's
	// numbering is well on. Zero means 5 s.
	JoinWindow time.Duration
	// Load measures the origin at each LoadInterval. Nil means a load of
	// the streams set (with a role) alone.
	Load func() Load
	// Logger receives lease losses, failed writes (once until they
	// succeed again) and epoch conflicts. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the metrics (directory_registration_*). Nil
	// means none are registered.
	Registerer prometheus.Registerer
}

// Status is a Registration's state.
type Status struct {
	// Registered says that the origin holds a lease and its record is
	// written under it.
	Registered bool
	// Lease is the lease held, 0 when none.
	Lease clientv3.LeaseID
	// LeaseLosses counts the leases lost since Run started; Failures,
	// the attempts to register that failed.
	LeaseLosses, Failures int
	// Err is the last error, nil once registered again.
	Err error
}

// Registration is an origin's side of the directory: Run keeps a lease
// and the origin's keys under it; SetStream and RemoveStream change the
// streams it lists, written by Run, so that they never wait on etcd.
// Its methods are safe for concurrent use; Run must be called once.
type Registration struct {
	cfg     RegistrationConfig
	keys    schema
	log     *slog.Logger
	metrics registrationMetrics
	kick    chan struct{} // 1-buffered: a change to write at once

	// writeMu serialises writes to etcd, so that they land in the order
	// of the local changes they carry. It is taken before mu.
	writeMu sync.Mutex

	mu        sync.Mutex // protects the fields below
	status    Status
	statusCh  chan struct{} // closed and replaced when status changes
	streams   map[string]*streamEntry
	load      Load               // the load written under the current lease
	loadAt    time.Time          // when; zero when not written under it
	oldLeases []clientv3.LeaseID // lost, to revoke once registered again
	lastRev   int64              // the revision of the last write
}

// NewRegistration validates cfg and returns a Registration.
func NewRegistration(cfg RegistrationConfig) (*Registration, error) {
	if cfg.Client == nil {
		return nil, errors.New("directory registration: Client is required")
	}
	if !ValidID(cfg.ID) {
		return nil, fmt.Errorf("directory registration: ID %q: want [A-Za-z0-9_.-]{1,64}", cfg.ID)
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("directory registration: PublicURL is required")
	}
	prefix, err := checkPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("directory registration: %w", err)
	}
	cfg.Prefix = prefix
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.LoadInterval <= 0 {
		cfg.LoadInterval = 5 * time.Second
	}
	if cfg.SegmentInterval <= 0 {
		cfg.SegmentInterval = 10 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 3 * time.Second
	}
	if cfg.JoinWindow <= 0 {
		cfg.JoinWindow = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registration{
		cfg:      cfg,
		keys:     schema{prefix},
		log:      cfg.Logger.With("origin", cfg.ID),
		metrics:  newRegistrationMetrics(),
		kick:     make(chan struct{}, 1),
		statusCh: make(chan struct{}),
		streams:  make(map[string]*streamEntry),
	}
	if err := promreg.Register(cfg.Registerer, r.metrics.collectors()...); err != nil {
		return nil, fmt.Errorf("directory registration: %w", err)
	}
	return r, nil
}

// Origin returns the ID and zone the origin registers with.
func (r *Registration) Origin() (id, zone string) { return r.cfg.ID, r.cfg.Zone }

// Status returns the registration's state and a channel closed when it
// changes.
func (r *Registration) Status() (Status, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.statusCh
}

// setStatusLocked changes the status and wakes those awaiting it.
func (r *Registration) setStatusLocked(f func(*Status)) {
	f(&r.status)
	close(r.statusCh)
	r.statusCh = make(chan struct{})
	if r.status.Registered {
		r.metrics.registered.Set(1)
	} else {
		r.metrics.registered.Set(0)
	}
}

// Run registers the origin and keeps it registered until ctx is done,
// then revokes its lease, so that its keys go at once, and returns nil.
// When the lease is lost (etcd unreachable for longer than TTL, or
// restored from an old backup) it registers again under a new one,
// writing everything again. It returns an error wrapping ErrClientClosed
// if the client is closed under it.
func (r *Registration) Run(ctx context.Context) error {
	b := newBackoff(100*time.Millisecond, r.cfg.TTL)
	for {
		began := time.Now()
		err := r.session(ctx)
		if time.Since(began) > r.cfg.TTL {
			b.reset() // it worked for a while
		}
		if ctx.Err() != nil {
			return nil
		}
		if r.cfg.Client.Ctx().Err() != nil {
			return fmt.Errorf("directory registration %s: %w", r.cfg.ID, ErrClientClosed)
		}
		r.mu.Lock()
		if r.status.Err == nil || err.Error() != r.status.Err.Error() {
			r.log.Warn("directory: not registered; retrying", "error", err)
		}
		r.setStatusLocked(func(s *Status) { s.Registered, s.Lease, s.Err = false, 0, err })
		r.mu.Unlock()
		if !b.wait(ctx) {
			return nil
		}
	}
}

// errLeaseLost says that the lease expired, or that etcd no longer knows
// it.
var errLeaseLost = errors.New("lease lost")

// session holds one lease: it grants it, writes the origin's keys under
// it, and keeps it alive and the keys up to date until the lease is lost
// (the error says why) or ctx is done (nil).
func (r *Registration) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lease, err := r.grant(sctx)
	if err != nil {
		r.mu.Lock()
		r.status.Failures++
		r.mu.Unlock()
		return err
	}
	ka, err := r.cfg.Client.KeepAlive(sctx, lease)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	r.mu.Lock()
	r.status.Lease = lease
	r.load, r.loadAt = Load{}, time.Time{}
	for name, e := range r.streams {
		if e.removed { // its key went with the old lease
			delete(r.streams, name)
			continue
		}
		e.written, e.ensured = 0, ""
	}
	r.mu.Unlock()

	var watch clientv3.WatchChan
	tick := time.NewTicker(r.cfg.LoadInterval)
	defer tick.Stop()
	b := newBackoff(100*time.Millisecond, r.cfg.LoadInterval)
	var retry <-chan time.Time // fires when a failed write is due again
	pending, periodic := true, true
	for {
		if pending {
			err := r.write(sctx, lease, periodic)
			switch {
			case errors.Is(err, errLeaseLost):
				return r.lost(err)
			case err != nil:
				r.noteWriteError(err)
				retry = time.After(b.next())
			default:
				b.reset()
				retry = nil
				if watch == nil {
					watch = r.watchEpochs(sctx)
				}
				r.noteRegistered(sctx, lease)
			}
			pending, periodic = false, false
		}
		select {
		case <-ctx.Done():
			r.revoke(ctx, lease)
			return nil
		case _, ok := <-ka:
			if !ok {
				return r.lost(errLeaseLost)
			}
		case <-r.kick:
			pending = retry == nil // else the retry writes it
		case <-retry:
			pending, periodic = true, true
		case <-tick.C:
			pending, periodic = retry == nil, retry == nil
		case wr, ok := <-watch:
			if !ok || wr.Err() != nil {
				watch = nil // watched again after the next write
				r.metrics.watchRestarts.Inc()
				r.forgetEnsured("")
				pending = retry == nil
				continue
			}
			for _, ev := range wr.Events {
				if kind, name, _ := r.keys.parse(string(ev.Kv.Key)); kind == keyEpoch && r.forgetEnsured(name) {
					pending = retry == nil
				}
			}
		}
	}
}

// grant asks for a lease.
func (r *Registration) grant(ctx context.Context) (clientv3.LeaseID, error) {
	ctx, cancel := r.requestContext(ctx)
	defer cancel()
	ttl := int64((r.cfg.TTL + time.Second - 1) / time.Second)
	resp, err := r.cfg.Client.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	r.metrics.requests.Inc()
	return resp.ID, nil
}

// requestContext bounds one request, and makes it fail at once when the
// etcd member it reaches has no leader (no quorum) rather than wait.
func (r *Registration) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), r.cfg.RequestTimeout)
}

// lost ends a session whose lease is gone.
func (r *Registration) lost(err error) error {
	r.metrics.leaseLosses.Inc()
	r.mu.Lock()
	r.status.LeaseLosses++
	r.oldLeases = append(r.oldLeases, r.status.Lease)
	r.mu.Unlock()
	return err
}

// noteRegistered marks the origin registered, once everything is
// written under lease, and revokes the leases it held before, whose
// keys are all written again under this one.
func (r *Registration) noteRegistered(ctx context.Context, lease clientv3.LeaseID) {
	r.mu.Lock()
	old := r.oldLeases
	r.oldLeases = nil
	if !r.status.Registered || r.status.Lease != lease || r.status.Err != nil {
		if r.status.Err != nil {
			r.log.Info("directory: registered again", "lease", fmt.Sprintf("%x", lease))
		}
		r.setStatusLocked(func(s *Status) { s.Registered, s.Lease, s.Err = true, lease, nil })
	}
	r.mu.Unlock()
	for _, id := range old {
		r.revoke(ctx, id) // most have expired already: etcd says so, harmlessly
	}
}

// noteWriteError logs a failed write once until the next success.
func (r *Registration) noteWriteError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.Err == nil || r.status.Err.Error() != err.Error() {
		r.log.Warn("directory: write failed; retrying", "error", err)
		r.setStatusLocked(func(s *Status) { s.Err = err })
	}
}

// revoke revokes a lease, with its own deadline: it also runs as ctx
// ends.
func (r *Registration) revoke(ctx context.Context, lease clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.cfg.Client.Revoke(rctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		r.log.Info("directory: lease not revoked: it expires by itself", "error", err)
	}
	r.metrics.requests.Inc()
}

// wake asks Run to write a change at once.
func (r *Registration) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // a wake-up is pending already
	}
}

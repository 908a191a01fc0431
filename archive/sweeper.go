package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/promreg"
)

// Defaults of SweeperConfig.
const (
	defaultRetention     = 168 * time.Hour
	defaultSweepInterval = time.Hour
	// tailBytes is how much of the end of an appended index is read for
	// its last entry.
	tailBytes = 16 << 10
)

// SweeperConfig configures a Sweeper.
type SweeperConfig struct {
	// Store holds the archive. Required.
	Store store.Store
	// Retention is how long an epoch is kept after its end: the End of
	// its record, or for an epoch never ended (a crash) the wall clock of
	// its last index entry, else its Start, else the newest time the
	// store lists for its objects. Zero means 168 h (a week).
	Retention time.Duration
	// Interval is the time between two sweeps of Run. Zero means 1 h.
	Interval time.Duration
	// Logger receives the sweeper's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives its metrics (archive_retention_*). Nil
	// registers nothing.
	Registerer prometheus.Registerer
}

// Sweeper deletes archived epochs older than the retention, except the
// epochs that a clip pins, and deletes expired clips. It is safe for
// concurrent use, though two sweeps at once do the work twice.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger
	r   Reader

	sweeps, deleted, expired, errors prometheus.Counter
	pinned                           prometheus.Gauge
}

// NewSweeper returns a Sweeper for cfg.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if cfg.Store == nil {
		return nil, errors.New("archive: SweeperConfig.Store is required")
	}
	setDefault(&cfg.Retention, defaultRetention)
	setDefault(&cfg.Interval, defaultSweepInterval)
	if cfg.Retention < 0 || cfg.Interval < 0 {
		return nil, errors.New("archive: negative SweeperConfig duration")
	}
	s := &Sweeper{
		cfg: cfg,
		log: cfg.Logger,
		r:   Reader{st: cfg.Store},
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_retention_sweeps_total", Help: "Retention sweeps of the archive.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_retention_deleted_epochs_total", Help: "Archived epochs deleted past their retention.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_retention_expired_clips_total", Help: "Clips deleted past their expiry.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archive_retention_errors_total", Help: "Retention sweep steps that failed (the epoch or clip is tried again next sweep).",
		}),
		pinned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "archive_retention_pinned_epochs", Help: "Epochs past their retention kept, at the last sweep, because a clip pins them.",
		}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := promreg.Register(cfg.Registerer, s.sweeps, s.deleted, s.expired, s.errors, s.pinned); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return s, nil
}

// Run sweeps at once and then every Interval until ctx is done; it
// returns nil. A failed sweep is logged and counted.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if res, err := s.Sweep(ctx, time.Now()); err != nil {
			s.log.Warn("archive retention sweep failed", "error", err)
		} else if res.Deleted > 0 || res.ExpiredClips > 0 {
			s.log.Info("archive retention sweep", "deleted_epochs", res.Deleted,
				"pinned_epochs", res.Pinned, "expired_clips", res.ExpiredClips)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SweepResult counts what one sweep did.
type SweepResult struct {
	// Deleted counts the epochs deleted, Pinned those past the retention
	// kept for a clip, Kept those within it.
	Deleted, Pinned, Kept int
	// ExpiredClips counts the clips deleted.
	ExpiredClips int
}

// Sweep makes one pass as of now: expired clips go, then every epoch
// that ended more than Retention before now and that no clip pins. An
// epoch or clip whose step fails is counted, logged and left for the
// next sweep; the error returned is for listings that failed.
func (s *Sweeper) Sweep(ctx context.Context, now time.Time) (SweepResult, error) {
	s.sweeps.Inc()
	var res SweepResult
	pins, err := s.pins(ctx, now, &res)
	if err != nil {
		return res, err
	}
	streams, err := s.r.Streams(ctx)
	if err != nil {
		s.errors.Inc()
		return res, err
	}
	for _, stream := range streams {
		epochs, err := s.r.Epochs(ctx, stream)
		if err != nil {
			s.errors.Inc()
			return res, err
		}
		for _, ep := range epochs {
			if err := s.sweepEpoch(ctx, now, ep, pins, &res); err != nil {
				s.errors.Inc()
				s.log.Warn("archive retention: epoch not swept", "stream", stream, "epoch", ep.Meta.Epoch, "error", err)
			}
		}
	}
	s.pinned.Set(float64(res.Pinned))
	return res, nil
}

// pins deletes the expired clips and returns the epochs the others pin,
// as EpochPrefix.
func (s *Sweeper) pins(ctx context.Context, now time.Time, res *SweepResult) (map[string]bool, error) {
	clips, err := Clips(ctx, s.cfg.Store)
	if err != nil {
		s.errors.Inc()
		return nil, err
	}
	pins := make(map[string]bool)
	for _, c := range clips {
		if !c.Expires.IsZero() && !now.Before(c.Expires) {
			if err := DeleteClip(ctx, s.cfg.Store, c.ID); err != nil {
				s.errors.Inc()
				s.log.Warn("archive retention: expired clip not deleted", "clip", c.ID, "error", err)
				pins[EpochPrefix(c.Stream, c.Epoch)] = true
				continue
			}
			s.expired.Inc()
			res.ExpiredClips++
			continue
		}
		pins[EpochPrefix(c.Stream, c.Epoch)] = true
	}
	return pins, nil
}

// sweepEpoch deletes one epoch if it is past the retention and unpinned.
// The deletion marks the record Deleting, looks for pins again, and only
// then deletes: see PutClip for the other half.
func (s *Sweeper) sweepEpoch(ctx context.Context, now time.Time, ep EpochInfo, pins map[string]bool, res *SweepResult) error {
	m := ep.Meta
	prefix := EpochPrefix(m.Stream, m.Epoch)
	last, err := s.lastActive(ctx, ep)
	if err != nil {
		return err
	}
	if last.IsZero() || now.Sub(last) < s.cfg.Retention {
		res.Kept++
		return nil
	}
	if pins[prefix] {
		res.Pinned++
		if m.Deleting { // a sweep stopped between its mark and its second look
			m.Deleting = false
			return s.putMeta(ctx, m)
		}
		return nil
	}
	m.Deleting = true
	if err := s.putMeta(ctx, m); err != nil {
		return err
	}
	again, err := s.pins(ctx, now, &SweepResult{})
	if err != nil {
		return err
	}
	if again[prefix] {
		res.Pinned++
		m.Deleting = false
		return s.putMeta(ctx, m)
	}
	if err := s.cfg.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("delete epoch: %w", err)
	}
	s.deleted.Inc()
	res.Deleted++
	s.log.Info("archive retention: epoch deleted", "stream", m.Stream, "epoch", m.Epoch, "last_active", last)
	return nil
}

// putMeta rewrites an epoch's record.
func (s *Sweeper) putMeta(ctx context.Context, m EpochMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write epoch metadata: %w", err)
	}
	if err := s.cfg.Store.Put(ctx, EpochPrefix(m.Stream, m.Epoch)+metaName, append(b, '\n')); err != nil {
		return fmt.Errorf("write epoch metadata: %w", err)
	}
	return nil
}

// lastActive returns when an epoch was last active: see
// SweeperConfig.Retention. Zero means unknown (the epoch is kept).
func (s *Sweeper) lastActive(ctx context.Context, ep EpochInfo) (time.Time, error) {
	m := ep.Meta
	if ep.HasMeta && m.Ended {
		return m.End, nil
	}
	st := s.cfg.Store
	prefix := EpochPrefix(m.Stream, m.Epoch)
	keys, err := indexKeys(ctx, st, prefix)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	if n := len(keys); n > 0 {
		b, err := s.tail(ctx, keys[n-1])
		if err != nil {
			return time.Time{}, err
		}
		parseLines(b, func(e Entry) {
			if e.Wall.After(last) {
				last = e.Wall
			}
		})
	}
	if last.IsZero() && ep.HasMeta {
		last = m.Start
	}
	if last.IsZero() {
		es, err := st.List(ctx, prefix)
		if err != nil {
			return time.Time{}, err
		}
		for _, e := range es {
			if e.ModTime.After(last) {
				last = e.ModTime
			}
		}
	}
	return last, nil
}

// tail returns the last lines of an index object, starting on a line.
func (s *Sweeper) tail(ctx context.Context, key string) ([]byte, error) {
	st := s.cfg.Store
	size := int64(-1)
	dir := key[:len(key)-len(entryName(key))]
	es, err := st.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Key == key {
			size = e.Size
		}
	}
	if size < 0 {
		return nil, nil // deleted since listed
	}
	off := max(0, size-tailBytes)
	b, err := st.Get(ctx, key, off, -1)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrRange) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if off > 0 { // the first line is cut
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		} else {
			b = nil
		}
	}
	return b, nil
}

// entryName returns the last element of a key.
func entryName(key string) string { return store.Entry{Key: key}.Name() }

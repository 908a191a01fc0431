package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
)

// Defaults of WriterConfig.
const (
	defaultWorkers         = 4
	defaultMaxQueued       = 1024
	defaultMaxQueuedBytes  = 256 << 20
	defaultWriteTimeout    = 30 * time.Second
	defaultRetryMin        = 100 * time.Millisecond
	defaultRetryMax        = 10 * time.Second
	defaultDrainTimeout    = 10 * time.Second
	defaultDropLogInterval = 10 * time.Second
	defaultCommitDelay     = time.Second
	// maxControl bounds the queued items other than media segments
	// (epoch begins and ends, init segments): a few per epoch.
	maxControl = 256
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Store receives the objects. Required. When it implements
	// store.Appender (dirstore) each epoch's media segments are appended
	// to its pack and its index to one file, both kept open while it
	// runs; otherwise (s3store) each segment is an object of its own and
	// the index a series of chunk objects of up to ChunkEntries lines,
	// the last rewritten whole as it grows.
	Store store.Store
	// Workers is the number of writes in flight at once. Zero means 4,
	// or 1 on a store that can append: there the media segments are
	// written by the committer alone (writer_commit.go), and workers
	// only write epoch records and init segments.
	Workers int
	// MaxQueued bounds the media segments queued or being written;
	// enqueueing one more drops the oldest queued. Zero means 1024
	// (about 4 minutes of 20 streams of one rendition, 1-second segments).
	MaxQueued int
	// MaxQueuedBytes bounds the bytes of those segments the same way.
	// Zero means 256 MiB.
	MaxQueuedBytes int64
	// ChunkEntries is the number of lines of an index chunk (stores that
	// cannot append). Zero means 512.
	ChunkEntries int
	// WriteTimeout bounds each store call. Zero means 30 s.
	WriteTimeout time.Duration
	// RetryMin and RetryMax bound the backoff after a failed write: all
	// workers pause RetryMin after a failure, doubling with each failure
	// in a row up to RetryMax (with jitter), until a write succeeds.
	// Zero means 100 ms and 10 s.
	RetryMin, RetryMax time.Duration
	// DrainTimeout is how long Run goes on writing what is queued once
	// its context is done. Zero means 10 s; negative means not at all.
	DrainTimeout time.Duration
	// CommitDelay is how long a media segment queued for a store that
	// can append waits for others before the committer appends them all
	// to their packs, makes them durable, and indexes them, together:
	// the segments of every stream that end within it cost one sync of
	// the store (store.SyncAller; else one of each pack and each index).
	// It is about what a crash may lose of what was queued. Flush commits
	// at once. Zero means 1 s (bench/archive: with 250 ms, the commits'
	// syncs and wake-ups cost the origin's CPU measurably more); negative
	// means no wait.
	CommitDelay time.Duration
	// DropLogInterval is the least time between two WARN lines about
	// dropped items (each line counts the drops since the last one). Zero
	// means 10 s.
	DropLogInterval time.Duration
	// Logger receives the writer's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the writer's metrics (archive_*). Nil
	// registers nothing.
	Registerer prometheus.Registerer
}

// Writer archives segments as a stream runs. Its enqueueing methods (on
// Epoch) are safe for concurrent use and never block; Run does the
// writing.
type Writer struct {
	cfg      WriterConfig
	appender store.Appender // cfg.Store when it can append, else nil
	// syncAll is cfg.Store when it can append and sync all at once, else nil.
	syncAll store.SyncAller
	log     *slog.Logger
	m       *writerMetrics

	// wake holds a token when a worker may find an item to write.
	wake chan struct{}
	// dropped holds a token when items were dropped since the last WARN.
	dropped chan struct{}

	mu sync.Mutex // guards the queue and backoff state below
	// seq is the seq of the last item enqueued.
	seq uint64
	// segs holds media segments, ctls everything else, oldest first.
	segs, ctls ring
	// inflight holds the seqs of the items the workers hold.
	inflight map[uint64]struct{}
	// inflightSegs counts the media segments in inflight; segBytes
	// the bytes of those and of segs.
	inflightSegs int
	segBytes     int64
	// dropsUnlogged counts the drops since the last WARN.
	dropsUnlogged int64
	// waiters counts Flush calls waiting on changed, which is closed and
	// replaced whenever an item is done or dropped while there are some.
	waiters int
	changed chan struct{}
	// failures counts the failed writes in a row; pauseUntil is when
	// workers may write again.
	failures   int
	pauseUntil time.Time

	// commitTimer fires CommitDelay after the first media segment of a
	// batch is queued (stores that can append), for the committer;
	// commitArmed, guarded by mu, reports that it is set. Queueing a
	// segment thus wakes no goroutine: the runtime's timer does, once a
	// batch. commit holds a token when the committer is to commit at once
	// (segments put back after a failure, no CommitDelay), commitNow when
	// a Flush waits.
	// gather is the committer's buffer of segments to append together
	// (writer_commit.go); only the committer uses it.
	gather []byte

	commitTimer       *time.Timer
	commitArmed       bool
	commit, commitNow chan struct{}

	openMu sync.Mutex // guards open
	// open holds the epochs that hold open files (appendLog), to close
	// when Run ends.
	open map[*Epoch]struct{}
}

// NewWriter returns a Writer for cfg. Nothing is written until Run.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("archive: WriterConfig.Store is required")
	}
	if _, ok := cfg.Store.(store.Appender); ok {
		setDefault(&cfg.Workers, 1)
	}
	setDefault(&cfg.Workers, defaultWorkers)
	setDefault(&cfg.MaxQueued, defaultMaxQueued)
	setDefault(&cfg.MaxQueuedBytes, defaultMaxQueuedBytes)
	setDefault(&cfg.ChunkEntries, defaultChunkEntries)
	setDefault(&cfg.WriteTimeout, defaultWriteTimeout)
	setDefault(&cfg.RetryMin, defaultRetryMin)
	setDefault(&cfg.RetryMax, defaultRetryMax)
	setDefault(&cfg.DrainTimeout, defaultDrainTimeout)
	setDefault(&cfg.DropLogInterval, defaultDropLogInterval)
	setDefault(&cfg.CommitDelay, defaultCommitDelay)
	if cfg.Workers < 0 || cfg.MaxQueued < 0 || cfg.MaxQueuedBytes < 0 || cfg.ChunkEntries < 0 ||
		cfg.WriteTimeout < 0 || cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin || cfg.DropLogInterval < 0 {
		return nil, errors.New("archive: negative WriterConfig field, or RetryMax < RetryMin")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		cfg:       cfg,
		log:       log,
		wake:      make(chan struct{}, 1),
		dropped:   make(chan struct{}, 1),
		segs:      newRing(cfg.MaxQueued + cfg.Workers), // room for items put back
		ctls:      newRing(maxControl),
		inflight:  make(map[uint64]struct{}, cfg.Workers),
		changed:   make(chan struct{}),
		open:      map[*Epoch]struct{}{},
		commit:    make(chan struct{}, 1),
		commitNow: make(chan struct{}, 1),
	}
	w.commitTimer = time.NewTimer(time.Hour)
	w.commitTimer.Stop()
	w.appender, _ = cfg.Store.(store.Appender)
	if w.appender != nil {
		w.syncAll, _ = cfg.Store.(store.SyncAller)
	}
	m, err := newWriterMetrics(cfg.Registerer, w.depth)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	w.m = m
	return w, nil
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Begin starts archiving epoch of stream, which began at start (zero
// means now), and returns the handle to enqueue its segments with. It
// never blocks: the metadata record is queued. Stream and epoch must be
// names of the live layout (ErrInvalid otherwise). One Writer should
// hold one handle per epoch at a time.
func (w *Writer) Begin(stream, epoch string, start time.Time) (*Epoch, error) {
	if !layout.ValidStream(stream) || !layout.ValidEpoch(epoch) {
		return nil, fmt.Errorf("%w: epoch %q of stream %q", ErrInvalid, epoch, stream)
	}
	if start.IsZero() {
		start = time.Now()
	}
	ep := &Epoch{
		w:      w,
		prefix: EpochPrefix(stream, epoch),
		meta:   EpochMeta{Stream: stream, Epoch: epoch, Start: start.UTC().Truncate(time.Millisecond)},
	}
	if w.appender != nil {
		opened := func() { w.trackOpen(ep) }
		ep.pack = &appendLog{key: ep.prefix + packName, ap: w.appender, opened: opened}
		ep.index = &appendLog{key: ep.prefix + indexName, ap: w.appender, opened: opened}
	}
	w.enqueue(item{op: opBegin, ep: ep})
	return ep, nil
}

// Flush waits until every item enqueued before the call is written, or
// dropped, or ctx is done. It needs Run to be running.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.seq
	w.waiters++
	defer func() {
		w.mu.Lock()
		w.waiters--
		w.mu.Unlock()
	}()
	w.mu.Unlock()
	select {
	case w.commitNow <- struct{}{}:
	default:
	}
	for {
		w.mu.Lock()
		low, ch := w.lowestLocked(), w.changed
		w.mu.Unlock()
		if low > target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("archive flush: %w", ctx.Err())
		}
	}
}

// Run writes what is queued until ctx is done, then for up to
// DrainTimeout more while items remain; what is left then is dropped,
// counted and logged. It returns nil. Call it once.
func (w *Writer) Run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var workers, others sync.WaitGroup
	for range w.cfg.Workers {
		workers.Go(func() { w.work(ctx, wctx) })
	}
	if w.appender != nil {
		workers.Go(func() { w.commitLoop(ctx, wctx) })
	}
	workersDone := make(chan struct{})
	others.Go(func() { w.logDrops(ctx) })
	others.Go(func() { // ends the drain
		select {
		case <-ctx.Done():
		case <-workersDone:
			return
		}
		if w.cfg.DrainTimeout < 0 {
			cancel()
			return
		}
		t := time.NewTimer(w.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-workersDone:
		}
	})
	workers.Wait()
	close(workersDone)
	others.Wait()
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.WriteTimeout)
	w.closeAll(cctx)
	ccancel()

	w.mu.Lock()
	left := w.segs.n + w.ctls.n
	for _, r := range []*ring{&w.segs, &w.ctls} {
		for r.n > 0 {
			it := r.pop()
			if it.op == opSegment {
				w.segBytes -= int64(len(it.data))
			}
			w.m.dropped.WithLabelValues(it.kind(), "shutdown").Inc()
		}
	}
	w.changedLocked()
	unlogged := w.dropsUnlogged
	w.dropsUnlogged = 0
	w.mu.Unlock()
	if unlogged > 0 {
		w.log.Warn("archive queue full: dropped the oldest items", "dropped", unlogged)
	}
	if left > 0 {
		w.log.Warn("archive stopped with items not written", "dropped", left)
	}
	return nil
}

// work is one worker: it writes items until the queue is empty after
// ctx is done, or wctx (the drain) ends.
func (w *Writer) work(ctx, wctx context.Context) {
	for wctx.Err() == nil {
		if !w.waitPause(wctx) {
			return
		}
		it, ok := w.pop()
		if !ok {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		w.process(wctx, &it)
	}
}

// logDrops writes a WARN line when items were dropped, at most once per
// DropLogInterval.
func (w *Writer) logDrops(ctx context.Context) {
	for {
		select {
		case <-w.dropped:
		case <-ctx.Done():
			return
		}
		w.mu.Lock()
		n := w.dropsUnlogged
		w.dropsUnlogged = 0
		w.mu.Unlock()
		if n > 0 {
			w.log.Warn("archive queue full: dropped the oldest items", "dropped", n,
				"max_queued", w.cfg.MaxQueued, "max_queued_bytes", w.cfg.MaxQueuedBytes)
		}
		t := time.NewTimer(w.cfg.DropLogInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

package archive

// The files an epoch appends to on a store that can append (store.Appender):
// its pack of media segments and its index, kept open while the epoch
// runs, with group commit of their syncs.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golivestream/live/archive/store"
)

// appendLog is one object of an epoch that is appended to: the pack or
// the index. Its methods are safe for concurrent use.
type appendLog struct {
	key string
	ap  store.Appender
	// opened is called when the object is opened (the writer tracks the
	// epochs holding open files, to close them when it stops).
	opened func()

	// syncMu serialises syncs and closes; it guards synced, and is taken
	// before mu.
	syncMu sync.Mutex
	// synced is the size up to which the object is known durable.
	synced int64

	mu sync.Mutex // guards f
	// f is the open object; nil until the first append, and once closed.
	f store.AppendFile
}

// openLocked opens the object if it is not open; mu is held.
func (l *appendLog) openLocked(ctx context.Context) error {
	if l.f != nil {
		return nil
	}
	f, err := l.ap.OpenAppend(ctx, l.key)
	if err != nil {
		return fmt.Errorf("open %s: %w", l.key, err)
	}
	l.f = f
	l.opened()
	return nil
}

// append adds data at the end of the object and returns where it
// begins and ends. It is not durable until sync(end).
func (l *appendLog) append(ctx context.Context, data []byte) (off, end int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.openLocked(ctx); err != nil {
		return 0, 0, err
	}
	off = l.f.Size()
	if err := l.f.Append(ctx, data); err != nil {
		return 0, 0, err
	}
	return off, l.f.Size(), nil
}

// sync makes the object durable up to end at least. Syncs group: one
// that finds what it needs made durable by another returns at once, and
// each makes durable all that was appended when it began.
func (l *appendLog) sync(ctx context.Context, end int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= end {
		return nil
	}
	l.mu.Lock()
	err := l.openLocked(ctx) // closed since (a failed sync at close)
	f := l.f
	var size int64
	if err == nil {
		size = f.Size()
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.Sync(ctx); err != nil {
		return err
	}
	l.synced = size
	return nil
}

// close syncs and closes the object if it is open. An append after it
// opens the object again.
func (l *appendLog) close(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	size := l.f.Size()
	err := l.f.Sync(ctx)
	if err == nil {
		l.synced = size
	}
	err = errors.Join(err, l.f.Close())
	l.f = nil
	return err
}

// closeFiles closes the epoch's pack and index, synced.
func (e *Epoch) closeFiles(ctx context.Context) error {
	if e.pack == nil {
		return nil
	}
	return errors.Join(e.pack.close(ctx), e.index.close(ctx))
}

// trackOpen records that e holds open files.
func (w *Writer) trackOpen(e *Epoch) {
	w.openMu.Lock()
	w.open[e] = struct{}{}
	w.openMu.Unlock()
}

// closeEpoch closes e's files, logging a failure, and forgets them.
func (w *Writer) closeEpoch(ctx context.Context, e *Epoch) {
	w.openMu.Lock()
	delete(w.open, e)
	w.openMu.Unlock()
	if err := e.closeFiles(ctx); err != nil {
		w.log.Error("archive files not closed", "epoch", e.prefix, "error", err)
	}
}

// closeAll closes the files of every epoch that holds some open.
func (w *Writer) closeAll(ctx context.Context) {
	w.openMu.Lock()
	eps := make([]*Epoch, 0, len(w.open))
	for e := range w.open {
		eps = append(eps, e)
	}
	w.openMu.Unlock()
	for _, e := range eps {
		w.closeEpoch(ctx, e)
	}
}

// awaitCommit records segment it, appended to e's pack, for the next
// commit, and wakes the committer.
func (w *Writer) awaitCommit(e *Epoch, it item) {
	e.commitMu.Lock()
	e.uncommitted = append(e.uncommitted, it)
	e.commitMu.Unlock()
	w.commitMu.Lock()
	w.toCommit[e] = struct{}{}
	w.commitMu.Unlock()
	w.mu.Lock()
	ch := w.commit
	if w.waiters > 0 { // a Flush waits
		ch = w.commitNow
	}
	w.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// commitLoop commits the segments appended to packs, CommitDelay after
// the first of a batch was (at once when a Flush waits or ctx is done),
// until the workers are done; Run commits what they left.
func (w *Writer) commitLoop(ctx, wctx context.Context, workersDone <-chan struct{}) {
	for {
		linger := true
		select {
		case <-w.commit:
		case <-w.commitNow:
			linger = false
		case <-workersDone:
			return
		}
		if d := w.cfg.CommitDelay; linger && d > 0 && ctx.Err() == nil {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-w.commitNow:
			case <-ctx.Done():
			case <-workersDone:
			}
			t.Stop()
		}
		w.commitAll(wctx)
	}
}

// commitAll commits every epoch's appended segments.
func (w *Writer) commitAll(ctx context.Context) {
	w.commitMu.Lock()
	eps := make([]*Epoch, 0, len(w.toCommit))
	for e := range w.toCommit {
		eps = append(eps, e)
	}
	clear(w.toCommit)
	w.commitMu.Unlock()
	for _, e := range eps {
		w.commitEpoch(ctx, e)
	}
}

// commitEpoch makes e's appended segments durable and indexed: one sync
// of the pack up to the last one's end, then their index lines, appended
// and synced together (flushIndex), so that the index never names bytes
// that are not on disk. When the sync fails the segments go back to the
// queue, to be appended again.
func (w *Writer) commitEpoch(ctx context.Context, e *Epoch) {
	e.commitMu.Lock()
	items := e.uncommitted
	e.uncommitted = nil
	e.commitMu.Unlock()
	if len(items) == 0 {
		return
	}
	var end int64
	size := 0
	for i := range items {
		end = max(end, items[i].offset+int64(len(items[i].data)))
		size += len(items[i].data)
	}
	err := w.callN(ctx, "segment", len(items), size, func(ctx context.Context) error {
		if err := e.pack.sync(ctx, end); err != nil {
			return fmt.Errorf("sync segments: %w", err)
		}
		return nil
	})
	if err != nil {
		w.m.retries.Add(float64(len(items)))
		for i := len(items) - 1; i >= 0; i-- { // back in their order
			items[i].packed, items[i].offset = false, 0
			w.requeue(items[i])
		}
		return
	}
	var lines []byte
	for i := range items {
		lines = items[i].entry().AppendLine(lines)
	}
	e.pendMu.Lock()
	e.pending = append(e.pending, lines...)
	e.pendMu.Unlock()
	if err := w.retry(ctx, "index", len(lines), e.flushIndex); err != nil {
		w.log.Error("archive index lines not written: their objects are stored but not indexed",
			"epoch", e.prefix, "error", err)
	}
	for i := range items {
		w.done(&items[i])
	}
	e.mu.Lock()
	ended := e.meta.Ended
	e.mu.Unlock()
	if ended { // a late segment opened the files again
		w.closeEpoch(ctx, e)
	}
}

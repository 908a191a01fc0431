package archive

// The files an epoch appends to on a store that can append (store.Appender):
// its pack of media segments and its index, kept open while the epoch
// runs, appended to and synced by the committer (writer_commit.go).

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// size returns the object's size, and false when it is not open.
func (l *appendLog) size() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, false
	}
	return l.f.Size(), true
}

// syncedTo records that the object is durable up to end, synced with
// the whole store (store.SyncAller).
func (l *appendLog) syncedTo(end int64) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.synced = max(l.synced, end)
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

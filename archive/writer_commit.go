package archive

// The committer of a store that can append (store.Appender): it alone
// takes the queued media segments, in batches, appends them to their
// epochs' packs, makes them durable, then indexes them. All the blocking
// file work of the live segments is thus done on one goroutine, in one
// burst per batch, rather than by whichever worker woke for each
// segment: on the benchmark's machine the waits and wake-ups around a
// blocking call cost more CPU than the call's own work.

import (
	"context"
	"fmt"
)

// commitLoop is the committer. It commits the queued media segments
// when commitTimer fires, CommitDelay after the first of a batch was
// queued (at once when a Flush waits, after a failure, or once ctx is
// done), until the queue holds none after ctx is done, or wctx (the
// drain) ends.
func (w *Writer) commitLoop(ctx, wctx context.Context) {
	for wctx.Err() == nil {
		if ctx.Err() == nil {
			select {
			case <-w.commitTimer.C:
			case <-w.commit:
			case <-w.commitNow:
			case <-ctx.Done():
			}
		}
		if !w.waitPause(wctx) {
			return
		}
		if !w.commitQueued(wctx) && ctx.Err() != nil {
			return // drained
		}
	}
}

// batch is the segments of one epoch in a commit, in the order queued.
type batch struct {
	e     *Epoch
	items []item
	// end is where the last of them ends in the pack, once appended.
	end int64
}

// commitQueued commits every queued media segment and reports whether
// there was any. Each goes through three steps, each step done for the
// whole batch before the next: appended to its epoch's pack; made
// durable (one SyncAll of the store, or one sync of each pack); then
// indexed, its line appended to its epoch's index and made durable the
// same way. So an index never names bytes that are not on disk. A
// segment that fails a step goes back to the queue, to be appended again
// (the bytes it left in the pack are named by no line).
func (w *Writer) commitQueued(ctx context.Context) bool {
	items := w.popSegments()
	if len(items) == 0 {
		return false
	}
	var bs []*batch
	byEpoch := map[*Epoch]*batch{}
	for _, it := range items {
		b := byEpoch[it.ep]
		if b == nil {
			b = &batch{e: it.ep}
			byEpoch[it.ep] = b
			bs = append(bs, b)
		}
		b.items = append(b.items, it)
	}
	bs = w.appendBatches(ctx, bs)
	bs = w.syncPacks(ctx, bs)
	w.indexBatches(ctx, bs)
	return true
}

// maxGather bounds the bytes of segments the committer gathers into
// one append.
const maxGather = 4 << 20

// appendBatches appends each batch's segments to its epoch's pack and
// returns the batches left: a segment that fails goes back to the
// queue with those after it in its batch.
func (w *Writer) appendBatches(ctx context.Context, bs []*batch) []*batch {
	kept := bs[:0]
	for _, b := range bs {
		n := w.appendBatch(ctx, b)
		w.requeueAll(b.items[n:])
		if b.items = b.items[:n]; n > 0 {
			kept = append(kept, b)
		}
	}
	return kept
}

// appendBatch appends b's segments to its pack, as many at a time as
// fit in maxGather, and returns how many it appended. They are copied
// into w.gather first, then written together from there: memory the
// kernel has read before. The origin's segments are memory the Go
// runtime has just taken from the system, and on the benchmark's
// virtual machine the kernel's first read of such a page is slow (a
// fault of the hypervisor's page tables, it seems): appending a 325 kB
// segment from there took 440 to 470 µs of CPU, copying it into a
// reused buffer and appending that 72 to 75 (BenchmarkAppendFresh in
// archive/dirstore).
func (w *Writer) appendBatch(ctx context.Context, b *batch) int {
	done := 0
	for done < len(b.items) {
		next, size := done, 0
		for next < len(b.items) && (next == done || size+len(b.items[next].data) <= maxGather) {
			size += len(b.items[next].data)
			next++
		}
		if cap(w.gather) < size {
			w.gather = make([]byte, 0, max(size, 2*cap(w.gather)))
		}
		buf := w.gather[:0]
		for i := done; i < next; i++ {
			buf = append(buf, b.items[i].data...)
		}
		var off int64
		err := w.callN(ctx, "segment", 0, 0, func(ctx context.Context) error {
			var err error
			if off, _, err = b.e.pack.append(ctx, buf); err != nil {
				return fmt.Errorf("append segments: %w", err)
			}
			return nil
		})
		if err != nil {
			return done
		}
		for i := done; i < next; i++ {
			it := &b.items[i]
			it.packed, it.offset = true, off
			off += int64(len(it.data))
		}
		b.end = off
		done = next
	}
	return done
}

// syncPacks makes the batches' segments durable and returns the
// batches left: those whose sync failed go back to the queue.
func (w *Writer) syncPacks(ctx context.Context, bs []*batch) []*batch {
	if w.syncAll != nil && len(bs) > 0 {
		items, size := 0, 0
		for _, b := range bs {
			items += len(b.items)
			for i := range b.items {
				size += len(b.items[i].data)
			}
		}
		if err := w.callN(ctx, "segment", items, size, w.syncAll.SyncAll); err != nil {
			for _, b := range bs {
				w.requeueAll(b.items)
			}
			return nil
		}
		for _, b := range bs {
			b.e.pack.syncedTo(b.end)
		}
		return bs
	}
	kept := bs[:0]
	for _, b := range bs {
		size := 0
		for i := range b.items {
			size += len(b.items[i].data)
		}
		err := w.callN(ctx, "segment", len(b.items), size, func(ctx context.Context) error {
			if err := b.e.pack.sync(ctx, b.end); err != nil {
				return fmt.Errorf("sync segments: %w", err)
			}
			return nil
		})
		if err != nil {
			w.requeueAll(b.items)
			continue
		}
		kept = append(kept, b)
	}
	return kept
}

// indexBatches appends the index lines of the batches' segments, durable
// in the store, makes them durable, and marks the segments done.
func (w *Writer) indexBatches(ctx context.Context, bs []*batch) {
	for _, b := range bs {
		var lines []byte
		for i := range b.items {
			lines = b.items[i].entry().AppendLine(lines)
		}
		b.e.pendMu.Lock()
		b.e.pending = append(b.e.pending, lines...)
		b.e.pendMu.Unlock()
		write := b.e.flushIndex
		if w.syncAll != nil {
			write = b.e.appendIndex // synced below, with the others
		}
		if err := w.retry(ctx, "index", len(lines), write); err != nil {
			w.log.Error("archive index lines not written: their objects are stored but not indexed",
				"epoch", b.e.prefix, "error", err)
		}
	}
	if w.syncAll != nil && len(bs) > 0 {
		ends := make([]int64, len(bs))
		for i, b := range bs {
			ends[i], _ = b.e.index.size()
		}
		if err := w.retry(ctx, "index", 0, w.syncAll.SyncAll); err != nil {
			w.log.Error("archive index lines not synced", "error", err)
		} else {
			for i, b := range bs {
				b.e.index.syncedTo(ends[i])
			}
		}
	}
	for _, b := range bs {
		for i := range b.items {
			w.done(&b.items[i])
		}
		b.e.mu.Lock()
		ended := b.e.meta.Ended
		b.e.mu.Unlock()
		if ended { // a late segment opened the files again
			w.closeEpoch(ctx, b.e)
		}
	}
}

// requeueAll puts segments back in the queue, in their order, as not
// appended.
func (w *Writer) requeueAll(items []item) {
	if len(items) == 0 {
		return
	}
	w.m.retries.Add(float64(len(items)))
	for i := len(items) - 1; i >= 0; i-- {
		items[i].packed, items[i].offset = false, 0
		w.requeue(items[i])
	}
}

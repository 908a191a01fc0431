package archive

import (
	"math"
	"time"
)

// op is what a queued item asks of the worker.
type op uint8

const (
	opBegin   op = iota // write the epoch's metadata
	opInit              // write an init segment, then metadata and index
	opSegment           // write a media segment, then its index line
	opEnd               // write the epoch's metadata, ended
)

// item is one queued write. Its data is the caller's, shared and never
// modified.
type item struct {
	seq       uint64
	op        op
	ep        *Epoch
	rendition string
	number    uint64
	start     int64
	duration  int64
	timescale uint32
	wall      time.Time
	data      []byte
	info      *Rendition // opInit
	// packed and offset say where a segment went in its epoch's pack
	// (stores that can append), once written.
	packed bool
	offset int64
}

// kind is the item's label in metrics.
func (it *item) kind() string {
	switch it.op {
	case opInit:
		return "init"
	case opSegment:
		return "segment"
	}
	return "meta"
}

// ring is a bounded FIFO of items, oldest first.
type ring struct {
	buf  []item
	head int
	n    int
}

func newRing(size int) ring { return ring{buf: make([]item, size)} }

func (r *ring) full() bool { return r.n == len(r.buf) }

// push appends it; the ring must not be full.
func (r *ring) push(it item) {
	r.buf[(r.head+r.n)%len(r.buf)] = it
	r.n++
}

// pushFront puts it back before the oldest; the ring must not be full.
func (r *ring) pushFront(it item) {
	r.head = (r.head + len(r.buf) - 1) % len(r.buf)
	r.buf[r.head] = it
	r.n++
}

// pop removes and returns the oldest item, clearing its slot so that the
// ring holds no reference to its data.
func (r *ring) pop() item {
	it := r.buf[r.head]
	r.buf[r.head] = item{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return it
}

// headSeq returns the oldest item's seq, or MaxUint64 when empty.
func (r *ring) headSeq() uint64 {
	if r.n == 0 {
		return math.MaxUint64
	}
	return r.buf[r.head].seq
}

// enqueue queues it without blocking: O(1), no allocation. A full queue
// drops its oldest item of the same class (segments, or everything
// else) first, counted.
func (w *Writer) enqueue(it item) {
	w.mu.Lock()
	w.seq++
	it.seq = w.seq
	dropped := 0
	if it.op == opSegment {
		size := int64(len(it.data))
		for w.segs.n > 0 && (w.segs.n+w.inflightSegs >= w.cfg.MaxQueued || w.segBytes+size > w.cfg.MaxQueuedBytes) {
			w.dropLocked(&w.segs)
			dropped++
		}
		w.segBytes += size
		w.segs.push(it)
		if w.appender != nil && !w.commitArmed && w.cfg.CommitDelay > 0 {
			w.commitArmed = true
			w.commitTimer.Reset(w.cfg.CommitDelay)
		}
	} else {
		if w.ctls.full() {
			w.dropLocked(&w.ctls)
			dropped++
		}
		w.ctls.push(it)
	}
	w.mu.Unlock()

	w.m.queued[it.op].Inc()
	var wake chan struct{}
	switch {
	case it.op != opSegment || w.appender == nil:
		wake = w.wake
	case w.cfg.CommitDelay <= 0:
		wake = w.commit // else commitTimer wakes the committer
	}
	select {
	case wake <- struct{}{}: // a nil wake never is ready
	default:
	}
	if dropped > 0 {
		select {
		case w.dropped <- struct{}{}:
		default:
		}
	}
}

// dropLocked drops the oldest item of r, counting it.
func (w *Writer) dropLocked(r *ring) {
	it := r.pop()
	if it.op == opSegment {
		w.segBytes -= int64(len(it.data))
	}
	w.dropsUnlogged++
	w.m.queueFull[it.op].Inc()
	w.changedLocked()
}

// pop takes the oldest queued item for a worker, marking it in flight.
// On a store that can append, workers take no media segments: the
// committer does (popSegments).
func (w *Writer) pop() (item, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	segs := w.segs.n
	if w.appender != nil {
		segs = 0
	}
	var r *ring
	switch {
	case segs == 0 && w.ctls.n == 0:
		return item{}, false
	case segs > 0 && w.segs.headSeq() < w.ctls.headSeq():
		r = &w.segs
	default:
		r = &w.ctls
	}
	it := r.pop()
	if it.op == opSegment {
		w.inflightSegs++
	}
	w.inflight[it.seq] = struct{}{}
	if w.ctls.n > 0 || w.appender == nil && w.segs.n > 0 {
		select { // another worker may take the next one
		case w.wake <- struct{}{}:
		default:
		}
	}
	return it, true
}

// popSegments takes every queued media segment, oldest first, marking
// them in flight: the committer's batch (stores that can append).
func (w *Writer) popSegments() []item {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commitArmed = false // the next segment starts a batch
	if w.segs.n == 0 {
		return nil
	}
	its := make([]item, 0, w.segs.n)
	for w.segs.n > 0 {
		it := w.segs.pop()
		w.inflightSegs++
		w.inflight[it.seq] = struct{}{}
		its = append(its, it)
	}
	return its
}

// requeue puts back an item whose first write failed, as the oldest, to
// be retried or dropped like any queued item.
func (w *Writer) requeue(it item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, it.seq)
	if it.op == opSegment {
		w.inflightSegs--
		w.segs.pushFront(it) // room: it was counted while in flight
		if w.appender != nil {
			select { // the committer tries again
			case w.commit <- struct{}{}:
			default:
			}
		}
		return
	}
	if w.ctls.full() {
		w.dropsUnlogged++
		w.m.queueFull[it.op].Inc()
		w.changedLocked()
		select {
		case w.dropped <- struct{}{}:
		default:
		}
		return
	}
	w.ctls.pushFront(it)
}

// done marks an item written (or given up), releasing its room.
func (w *Writer) done(it *item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, it.seq)
	if it.op == opSegment {
		w.inflightSegs--
		w.segBytes -= int64(len(it.data))
	}
	w.changedLocked()
}

// changedLocked wakes the Flush calls waiting, if any.
func (w *Writer) changedLocked() {
	if w.waiters > 0 {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// lowestLocked returns the seq of the oldest item not yet done, or
// MaxUint64.
func (w *Writer) lowestLocked() uint64 {
	low := min(w.segs.headSeq(), w.ctls.headSeq())
	for s := range w.inflight {
		low = min(low, s)
	}
	return low
}

// depth returns the items and segment bytes queued or in flight.
func (w *Writer) depth() (items int, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.segs.n + w.ctls.n + len(w.inflight), w.segBytes
}

package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// defaultChunkEntries is the default of WriterConfig.ChunkEntries.
const defaultChunkEntries = 512

// Epoch is the handle of one epoch being archived, from Writer.Begin.
// Its methods are safe for concurrent use and never block: each queues
// a write and returns. The byte slices given are kept until written and
// must not be modified (the origin's segments are immutable).
type Epoch struct {
	w      *Writer
	prefix string // EpochPrefix

	mu sync.Mutex // guards meta and metaQueued
	// meta is the record as it stands; its writes always carry the latest.
	meta EpochMeta
	// metaQueued reports a write of meta queued by AddKey or Encrypted
	// and not yet begun (encryption.go).
	metaQueued bool

	// metaMu serialises the writes of meta, so that the last one written
	// is the latest; it guards keysMerged.
	metaMu sync.Mutex
	// keysMerged reports that the keys of the stored record were merged
	// into meta (encryption.go).
	keysMerged bool

	// pack and index are the epoch's appended objects on a store that can
	// append; nil otherwise.
	pack, index *appendLog

	// pendMu guards pending, the index lines of written objects that are
	// not yet in the index.
	pendMu  sync.Mutex
	pending []byte

	idxMu sync.Mutex // serialises index writes; guards the fields below
	// idxOpened reports that the index's state was read from the store.
	idxOpened bool
	// chunk is the number of the chunk being written (stores that cannot
	// append), chunkBuf its lines, chunkLines their number, and
	// chunkDirty reports lines in chunkBuf not yet written.
	chunk      int
	chunkBuf   []byte
	chunkLines int
	chunkDirty bool
}

// Prefix returns the key prefix of the epoch's objects.
func (e *Epoch) Prefix() string { return e.prefix }

// Init is a rendition's CMAF init segment, as Epoch.Init takes it.
type Init struct {
	// Rendition describes the rendition; its ID is required.
	Rendition Rendition
	// Wall is when the init segment was made. Zero means now.
	Wall time.Time
	// Data is the init segment. Required; kept, not copied, until
	// written.
	Data []byte
}

// Init queues a rendition's init segment, and the rendition's entry in
// the epoch's record. Each rendition of the epoch (the ladder's
// included) should give its init segment once, before or after its
// first segments; a second one replaces the first. It never blocks.
func (e *Epoch) Init(in Init) error {
	if !layout.ValidRendition(in.Rendition.ID) || len(in.Data) == 0 {
		return fmt.Errorf("%w: init segment of rendition %q (%d bytes)", ErrInvalid, in.Rendition.ID, len(in.Data))
	}
	if in.Wall.IsZero() {
		in.Wall = time.Now()
	}
	r := in.Rendition
	e.w.enqueue(item{op: opInit, ep: e, rendition: r.ID, wall: in.Wall, data: in.Data, info: &r})
	return nil
}

// Segment is a complete media segment, as Epoch.Segment takes it.
type Segment struct {
	// Rendition is the rendition's name ("v0"). Required.
	Rendition string
	// Number is the segment's number in the live layout.
	Number uint64
	// Start and Duration are its media time in Timescale ticks (the
	// packager's Segment.Start and .Duration). Timescale is required.
	Start, Duration int64
	Timescale       uint32
	// Wall is when the segment was complete. Zero means now.
	Wall time.Time
	// Data is the whole segment. Required; kept, not copied, until
	// written.
	Data []byte
}

// Segment queues a media segment. It is O(1), takes no allocation and
// never blocks; when the queue is full the oldest queued segment is
// dropped (and counted). It fails only for a segment that is not well
// formed (ErrInvalid), which is not queued.
func (e *Epoch) Segment(s Segment) error {
	if !layout.ValidRendition(s.Rendition) || s.Timescale == 0 || s.Duration < 0 || len(s.Data) == 0 {
		return fmt.Errorf("%w: segment %d of rendition %q", ErrInvalid, s.Number, s.Rendition)
	}
	if s.Wall.IsZero() {
		s.Wall = time.Now()
	}
	e.w.enqueue(item{
		op: opSegment, ep: e, rendition: s.Rendition, number: s.Number,
		start: s.Start, duration: s.Duration, timescale: s.Timescale, wall: s.Wall, data: s.Data,
	})
	return nil
}

// End queues the record that the epoch ended at end (zero means now).
// Segments may still be queued after it, for instance by a rendition
// finishing late; they are archived too.
func (e *Epoch) End(end time.Time) {
	if end.IsZero() {
		end = time.Now()
	}
	e.w.enqueue(item{op: opEnd, ep: e, wall: end})
}

// process writes one item: the object first (back to the queue if that
// fails), then what names it (retried in place).
func (w *Writer) process(ctx context.Context, it *item) {
	e := it.ep
	kind := it.kind()
	var first func(context.Context) error
	switch it.op {
	case opSegment, opInit: // segments only on a store that cannot append (else writer_commit.go)
		key := e.prefix + it.entry().Key()
		first = func(ctx context.Context) error { return w.cfg.Store.Put(ctx, key, it.data) }
	case opBegin:
		first = e.writeMeta
	case opEnd:
		e.mu.Lock()
		e.meta.Ended, e.meta.End = true, it.wall.UTC().Truncate(time.Millisecond)
		e.mu.Unlock()
		first = func(ctx context.Context) error {
			if err := e.writeMeta(ctx); err != nil {
				return err
			}
			w.closeEpoch(ctx, e)
			return nil
		}
	}
	if err := w.call(ctx, kind, len(it.data), first); err != nil {
		w.m.retries.Inc()
		w.requeue(*it)
		return
	}
	defer w.done(it)
	if it.op == opBegin || it.op == opEnd {
		return
	}
	if it.op == opInit {
		e.mu.Lock()
		i := slices.IndexFunc(e.meta.Renditions, func(r Rendition) bool { return r.ID == it.info.ID })
		if i < 0 {
			e.meta.Renditions = append(e.meta.Renditions, *it.info)
			slices.SortFunc(e.meta.Renditions, func(a, b Rendition) int { return strings.Compare(a.ID, b.ID) })
		} else {
			e.meta.Renditions[i] = *it.info
		}
		e.mu.Unlock()
		if err := w.retry(ctx, "meta", 0, e.writeMeta); err != nil {
			w.log.Error("archive metadata not written", "epoch", e.prefix, "error", err)
		}
	}
	line := it.entry().AppendLine(nil)
	e.pendMu.Lock()
	e.pending = append(e.pending, line...)
	e.pendMu.Unlock()
	if err := w.retry(ctx, "index", len(line), e.flushIndex); err != nil {
		w.log.Error("archive index lines not written: their objects are stored but not indexed",
			"epoch", e.prefix, "error", err)
	}
}

// entry is the index entry of an init or media segment item.
func (it *item) entry() Entry {
	if it.op == opInit {
		return Entry{Rendition: it.rendition, Kind: KindInit, Wall: it.wall.UTC().Truncate(time.Millisecond), Size: int64(len(it.data))}
	}
	return Entry{
		Rendition: it.rendition, Kind: KindSegment, Number: it.number,
		Start: it.start, Duration: it.duration, Timescale: it.timescale,
		Wall: it.wall.UTC().Truncate(time.Millisecond), Size: int64(len(it.data)),
		Packed: it.packed, Offset: it.offset,
	}
}

// writeMeta writes the epoch's metadata record as it stands.
func (e *Epoch) writeMeta(ctx context.Context) error {
	e.metaMu.Lock()
	defer e.metaMu.Unlock()
	if err := e.mergeStoredKeysLocked(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.metaQueued = false
	m := e.meta // m.Encryption is never modified, only replaced
	m.Renditions = slices.Clone(m.Renditions)
	e.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("write epoch metadata: %w", err)
	}
	if err := e.w.cfg.Store.Put(ctx, e.prefix+metaName, append(b, '\n')); err != nil {
		return fmt.Errorf("write epoch metadata: %w", err)
	}
	return nil
}

// flushIndex writes the pending index lines, with those of any other
// worker waiting (group commit). When it returns nil, every line that was
// pending when it was called is in the index, durable: whoever took a
// line before either wrote it or put it back before letting go of
// idxMu, and an appended index is synced up to its end.
func (e *Epoch) flushIndex(ctx context.Context) error { return e.writeIndex(ctx, true) }

// appendIndex is flushIndex without the sync of an appended index: the
// committer syncs the whole store after (store.SyncAller).
func (e *Epoch) appendIndex(ctx context.Context) error { return e.writeIndex(ctx, false) }

// writeIndex is flushIndex, syncing an appended index when sync is set.
func (e *Epoch) writeIndex(ctx context.Context, sync bool) error {
	e.idxMu.Lock()
	defer e.idxMu.Unlock()
	st := e.w.cfg.Store
	if !e.idxOpened {
		if err := e.openIndexLocked(ctx); err != nil {
			return err
		}
		e.idxOpened = true
	}
	e.pendMu.Lock()
	batch := e.pending
	e.pending = nil
	e.pendMu.Unlock()
	if e.index != nil {
		var err error
		if len(batch) > 0 {
			_, _, err = e.index.append(ctx, batch)
		}
		if end, open := e.index.size(); err == nil && sync && open {
			err = e.index.sync(ctx, end) // with lines appended unsynced by others
		}
		if err != nil {
			// Lines appended but not synced are appended again: readers
			// keep the first of repeated lines.
			e.pendMu.Lock()
			e.pending = append(batch, e.pending...)
			e.pendMu.Unlock()
			return fmt.Errorf("append index: %w", err)
		}
		return nil
	}
	if len(batch) == 0 && !e.chunkDirty {
		return nil
	}
	// A chunk object, rewritten whole with the lines added. Lines beyond
	// ChunkEntries go to the next chunk once this one is written.
	for len(batch) > 0 || e.chunkDirty {
		for len(batch) > 0 && e.chunkLines < e.w.cfg.ChunkEntries {
			i := bytes.IndexByte(batch, '\n') + 1
			e.chunkBuf = append(e.chunkBuf, batch[:i]...)
			batch = batch[i:]
			e.chunkLines++
			e.chunkDirty = true
		}
		if err := st.Put(ctx, chunkKey(e.prefix, e.chunk), e.chunkBuf); err != nil {
			e.pendMu.Lock()
			e.pending = append(batch, e.pending...)
			e.pendMu.Unlock()
			return fmt.Errorf("write index chunk: %w", err)
		}
		e.chunkDirty = false
		if e.chunkLines >= e.w.cfg.ChunkEntries {
			e.chunk++
			e.chunkBuf, e.chunkLines = nil, 0
		}
	}
	return nil
}

// openIndexLocked reads what the store holds of the index already (an
// epoch begun again): an appended index not ending in a newline (torn
// by a crash) gets one, so that the next line starts whole; chunks
// continue after the last one.
func (e *Epoch) openIndexLocked(ctx context.Context) error {
	st := e.w.cfg.Store
	if e.w.appender != nil {
		es, err := st.List(ctx, e.prefix)
		if err != nil {
			return fmt.Errorf("open index: %w", err)
		}
		for _, en := range es {
			if en.Key != e.prefix+indexName || en.Size == 0 {
				continue
			}
			last, err := st.Get(ctx, en.Key, en.Size-1, 1)
			if err != nil {
				return fmt.Errorf("open index: %w", err)
			}
			if len(last) == 1 && last[0] != '\n' {
				e.pendMu.Lock()
				e.pending = append([]byte{'\n'}, e.pending...)
				e.pendMu.Unlock()
			}
		}
		return nil
	}
	es, err := st.List(ctx, e.prefix+chunksDir)
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	for _, en := range es {
		if n, ok := chunkNumber(en.Name()); ok && n >= e.chunk {
			e.chunk = n + 1
		}
	}
	return nil
}

// chunkNumber parses the name of an index chunk, "{8 digits}.jsonl".
func chunkNumber(name string) (int, bool) {
	d, ok := strings.CutSuffix(name, ".jsonl")
	if !ok || len(d) != 8 {
		return 0, false
	}
	n, err := strconv.Atoi(d)
	return n, err == nil && n >= 0
}

package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// Store holds the archive. Required.
	Store store.Store
	// LocateEpochs is the number of epochs whose packed segments' places
	// Locate keeps (the least recently used go first). Zero means 64.
	LocateEpochs int
}

// Reader reads an archive: its streams, epochs, indexes and objects. It
// keeps nothing but what Locate learnt of where segments are, and is
// safe for concurrent use.
type Reader struct {
	st store.Store

	locMu sync.Mutex // guards locs
	// locs holds what Locate read of each epoch's index, by prefix.
	locs *simplelru.LRU[string, *epochLocs]
}

// NewReader returns a Reader of cfg.Store.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Store == nil {
		return nil, errors.New("archive: ReaderConfig.Store is required")
	}
	setDefault(&cfg.LocateEpochs, defaultLocateEpochs)
	locs, err := simplelru.NewLRU[string, *epochLocs](cfg.LocateEpochs, nil)
	if err != nil {
		return nil, fmt.Errorf("archive: ReaderConfig.LocateEpochs: %w", err)
	}
	return &Reader{st: cfg.Store, locs: locs}, nil
}

// Streams returns the names of the archived streams, sorted.
func (r *Reader) Streams(ctx context.Context) ([]string, error) {
	es, err := r.st.List(ctx, streamsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	var out []string
	for _, e := range es {
		if e.Dir && layout.ValidStream(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// EpochInfo is an archived epoch as listed.
type EpochInfo struct {
	// Meta is the epoch's record. When the record is missing (a crash
	// before it was written, or a deletion under way) only Stream and
	// Epoch are set, and HasMeta is false.
	Meta    EpochMeta
	HasMeta bool
}

// Epochs returns the archived epochs of stream, oldest first (epochs
// are base-36 milliseconds).
func (r *Reader) Epochs(ctx context.Context, stream string) ([]EpochInfo, error) {
	if !layout.ValidStream(stream) {
		return nil, fmt.Errorf("%w: stream %q", ErrInvalid, stream)
	}
	es, err := r.st.List(ctx, streamsPrefix+stream+"/")
	if err != nil {
		return nil, fmt.Errorf("list epochs of %s: %w", stream, err)
	}
	var out []EpochInfo
	for _, e := range es {
		if !e.Dir || !layout.ValidEpoch(e.Name()) {
			continue
		}
		m, err := r.Meta(ctx, stream, e.Name())
		switch {
		case errors.Is(err, store.ErrNotFound):
			out = append(out, EpochInfo{Meta: EpochMeta{Stream: stream, Epoch: e.Name()}})
		case err != nil:
			return nil, err
		default:
			out = append(out, EpochInfo{Meta: m, HasMeta: true})
		}
	}
	slices.SortFunc(out, func(a, b EpochInfo) int {
		return cmp.Or(cmp.Compare(len(a.Meta.Epoch), len(b.Meta.Epoch)), strings.Compare(a.Meta.Epoch, b.Meta.Epoch))
	})
	return out, nil
}

// AllEpochs returns the epochs of every archived stream, by stream.
func (r *Reader) AllEpochs(ctx context.Context) ([]EpochInfo, error) {
	streams, err := r.Streams(ctx)
	if err != nil {
		return nil, err
	}
	var out []EpochInfo
	for _, s := range streams {
		es, err := r.Epochs(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// Meta returns an epoch's record; store.ErrNotFound (wrapped) when it
// has none.
func (r *Reader) Meta(ctx context.Context, stream, epoch string) (EpochMeta, error) {
	if !layout.ValidStream(stream) || !layout.ValidEpoch(epoch) {
		return EpochMeta{}, fmt.Errorf("%w: epoch %q of stream %q", ErrInvalid, epoch, stream)
	}
	b, err := r.st.Get(ctx, EpochPrefix(stream, epoch)+metaName, 0, -1)
	if err != nil {
		return EpochMeta{}, fmt.Errorf("epoch %s of %s: %w", epoch, stream, err)
	}
	var m EpochMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return EpochMeta{}, fmt.Errorf("epoch %s of %s: %w: %w", epoch, stream, ErrInvalid, err)
	}
	if m.Stream != stream || m.Epoch != epoch {
		return EpochMeta{}, fmt.Errorf("epoch %s of %s: %w: record names epoch %s of %s", epoch, stream, ErrInvalid, m.Epoch, m.Stream)
	}
	return m, nil
}

// Index is an epoch's index as loaded.
type Index struct {
	// Entries are the entries, each object once, ordered by rendition,
	// then init before segments, then number.
	Entries []Entry
	// Skipped counts the lines that did not parse (a torn last line after
	// a crash, or damage).
	Skipped int
}

// Index loads an epoch's index: the appended file and the chunks,
// whichever the store holds. An epoch with no index gives an empty one.
func (r *Reader) Index(ctx context.Context, stream, epoch string) (Index, error) {
	if !layout.ValidStream(stream) || !layout.ValidEpoch(epoch) {
		return Index{}, fmt.Errorf("%w: epoch %q of stream %q", ErrInvalid, epoch, stream)
	}
	prefix := EpochPrefix(stream, epoch)
	keys, err := indexKeys(ctx, r.st, prefix)
	if err != nil {
		return Index{}, err
	}
	var idx Index
	seen := make(map[string]bool)
	for _, k := range keys {
		b, err := r.st.Get(ctx, k, 0, -1)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since listed
		}
		if err != nil {
			return Index{}, fmt.Errorf("read index: %w", err)
		}
		idx.Skipped += parseLines(b, func(e Entry) {
			if k := e.Name(); !seen[k] {
				seen[k] = true
				idx.Entries = append(idx.Entries, e)
			}
		})
	}
	slices.SortFunc(idx.Entries, compareEntries)
	return idx, nil
}

// compareEntries orders entries by rendition, init first, then number.
func compareEntries(a, b Entry) int {
	return cmp.Or(
		strings.Compare(a.Rendition, b.Rendition),
		cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)),
		cmp.Compare(a.Number, b.Number),
	)
}

// kindOrder puts init entries before segments.
func kindOrder(k Kind) int {
	if k == KindInit {
		return 0
	}
	return 1
}

// indexKeys returns the keys of an epoch's index objects, in order: the
// appended file, then the chunks.
func indexKeys(ctx context.Context, st store.Store, prefix string) ([]string, error) {
	es, err := st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	var keys []string
	chunked := false
	for _, e := range es {
		switch {
		case !e.Dir && e.Name() == indexName:
			keys = append(keys, e.Key)
		case e.Dir && e.Key == prefix+chunksDir:
			chunked = true
		}
	}
	if chunked {
		cs, err := st.List(ctx, prefix+chunksDir)
		if err != nil {
			return nil, fmt.Errorf("list index chunks: %w", err)
		}
		for _, c := range cs {
			if _, ok := chunkNumber(c.Name()); ok && !c.Dir {
				keys = append(keys, c.Key)
			}
		}
	}
	return keys, nil
}

// parseLines calls f with each entry of b, JSON lines, and returns the
// number of non-empty lines that did not parse.
func parseLines(b []byte, f func(Entry)) (skipped int) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := ParseEntry(line)
		if err != nil {
			skipped++
			continue
		}
		f(e)
	}
	return skipped
}

// Object returns bytes [off, off+n) of the object e names in an epoch
// (n < 0: to the end). A packed segment's e must be its index entry (as
// Index or Locate give it): its bytes are found at its offset.
func (r *Reader) Object(ctx context.Context, stream, epoch string, e Entry, off, n int64) ([]byte, error) {
	if !layout.ValidStream(stream) || !layout.ValidEpoch(epoch) || !layout.ValidRendition(e.Rendition) {
		return nil, fmt.Errorf("%w: object of epoch %q of stream %q", ErrInvalid, epoch, stream)
	}
	if e.Packed {
		if off < 0 || off > e.Size {
			return nil, fmt.Errorf("read archived %s: offset %d of %d bytes: %w", e.Name(), off, e.Size, store.ErrRange)
		}
		if n < 0 || n > e.Size-off {
			n = e.Size - off
		}
		off += e.Offset
	}
	b, err := r.st.Get(ctx, EpochPrefix(stream, epoch)+e.Key(), off, n)
	if err != nil {
		return nil, fmt.Errorf("read archived object: %w", err)
	}
	if e.Packed && int64(len(b)) != n {
		return nil, fmt.Errorf("read archived %s: %d bytes of %d: %w", e.Name(), len(b), n, store.ErrNotFound)
	}
	return b, nil
}

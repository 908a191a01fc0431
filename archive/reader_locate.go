package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
)

// defaultLocateEpochs is the default of ReaderConfig.LocateEpochs.
const defaultLocateEpochs = 64

// epochLocs is what a Reader knows of where an epoch's packed segments
// are: the entries of the index's first read bytes.
type epochLocs struct {
	mu   sync.Mutex // guards the fields below; held while reading more
	read int64      // bytes of the index parsed (whole lines)
	at   map[string]Entry
}

// Locate returns the index entry of the object e names (by Rendition,
// Kind and Number: Entry.Name) in an epoch, as Object needs it: on a
// store that packs segments, a segment is found in the index, of which
// the Reader keeps what it read, reading only what was appended since
// (an epoch being archived grows). Anything else, or a segment the
// index does not name (an archive written before packs, or not yet
// written), is returned as given: Object then reads it by its name.
func (r *Reader) Locate(ctx context.Context, stream, epoch string, e Entry) (Entry, error) {
	if !layout.ValidStream(stream) || !layout.ValidEpoch(epoch) || !layout.ValidRendition(e.Rendition) {
		return Entry{}, fmt.Errorf("%w: object of epoch %q of stream %q", ErrInvalid, epoch, stream)
	}
	if _, packs := r.st.(store.Appender); !packs || e.Kind != KindSegment {
		return e, nil
	}
	prefix := EpochPrefix(stream, epoch)
	r.locMu.Lock()
	el, ok := r.locs.Get(prefix)
	if !ok {
		el = &epochLocs{at: map[string]Entry{}}
		r.locs.Add(prefix, el)
	}
	r.locMu.Unlock()

	name := e.Name()
	el.mu.Lock()
	defer el.mu.Unlock()
	if found, ok := el.at[name]; ok {
		return found, nil
	}
	b, err := r.st.Get(ctx, prefix+indexName, el.read, -1)
	if errors.Is(err, store.ErrRange) { // a shorter index: deleted and begun again
		el.read, el.at = 0, map[string]Entry{}
		b, err = r.st.Get(ctx, prefix+indexName, 0, -1)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e, nil
	case err != nil:
		return Entry{}, fmt.Errorf("read index: %w", err)
	}
	whole := bytes.LastIndexByte(b, '\n') + 1 // a line being appended waits
	parseLines(b[:whole], func(en Entry) {
		if n := en.Name(); !hasKey(el.at, n) {
			el.at[n] = en
		}
	})
	el.read += int64(whole)
	if found, ok := el.at[name]; ok {
		return found, nil
	}
	return e, nil
}

func hasKey(m map[string]Entry, k string) bool {
	_, ok := m[k]
	return ok
}

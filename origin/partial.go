package origin

import (
	"bytes"
	"errors"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/internal/growbuf"
)

// partial is the segment a rendition is producing, readable while it
// grows (a growbuf.Buffer): a request held for it gets each CMAF chunk
// (moof+mdat, about 250 ms of media) as soon as the packager closes it,
// instead of the whole segment at its end. The chunks are the very bytes
// of the segment (packager.Chunk), so a reader that got them all got the
// segment. The buffer completes when the segment was added whole, and
// fails with errAbandoned otherwise.
type partial struct {
	number uint64
	*growbuf.Buffer
	// began is when the first chunk came, in Unix nanoseconds (0: none
	// yet): the segment's Last-Modified, streamed or not.
	began atomic.Int64
}

// errAbandoned ends a partial whose segment will not be added as streamed.
var errAbandoned = errors.New("segment abandoned while produced")

func newPartial(number uint64) *partial {
	return &partial{number: number, Buffer: growbuf.New(0)}
}

// add takes the segment so far, up to a chunk just packaged (an immutable
// prefix: packager.Chunk.Segment), without copying, unless the partial is
// over. Chunks come from one goroutine, the packager's.
func (p *partial) add(soFar []byte) {
	if p.began.Load() == 0 {
		p.began.Store(time.Now().UnixNano())
	}
	p.Extend(soFar)
}

// beganAt returns when the first chunk came, or the zero time.
func (p *partial) beganAt() time.Time {
	if ns := p.began.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// end marks the partial over, with its segment added whole (complete:
// then its bytes must be that segment's) or not.
func (p *partial) end(complete bool) {
	if complete {
		p.Finish(nil)
	} else {
		p.Finish(errAbandoned)
	}
}

// finish ends the partial of a segment that was just added with data: it
// is complete if its chunks were that data, else abandoned (a chunk went
// missing: readers must not take what they got for the segment).
func (p *partial) finish(data []byte) {
	got, _, _, _ := p.Next(0)
	p.end(bytes.Equal(got, data))
}

package origin

import (
	"bytes"
	"sync"
	"time"
)

// partial is the segment a rendition is producing, readable while it
// grows: a request held for it gets each CMAF chunk (moof+mdat, about
// 250 ms of media) as soon as the packager closes it, instead of the
// whole segment at its end. The chunks are the very bytes of the segment
// (packager.Chunk), so a reader that got them all got the segment. Bytes
// once added never change: readers share prefixes of one buffer.
type partial struct {
	number uint64

	mu sync.Mutex
	// data is the chunks so far; done is set when no more will come:
	// complete if the segment was added whole, else abandoned. more is
	// closed and replaced whenever data grows or done is set. All guarded
	// by mu.
	data     []byte
	done     bool
	complete bool
	more     chan struct{}
	// began is when the first chunk came: the Last-Modified of the
	// segment, streamed or not; guarded by mu.
	began time.Time
}

func newPartial(number uint64) *partial {
	return &partial{number: number, more: make(chan struct{})}
}

// add appends a chunk, unless the partial is over.
func (p *partial) add(chunk []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if len(p.data) == 0 {
		p.began = time.Now()
	}
	p.data = append(p.data, chunk...)
	p.wakeLocked()
}

// beganAt returns when the first chunk came, or the zero time.
func (p *partial) beganAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.began
}

// end marks the partial over, with its segment added whole (complete:
// then data must be that segment's bytes) or not.
func (p *partial) end(complete bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done, p.complete = true, complete
	p.wakeLocked()
}

// finish ends the partial of a segment that was just added with data: it
// is complete if its chunks were that data, else abandoned (a chunk went
// missing: readers must not take what they got for the segment).
func (p *partial) finish(data []byte) {
	p.mu.Lock()
	same := bytes.Equal(p.data, data)
	p.mu.Unlock()
	p.end(same)
}

func (p *partial) wakeLocked() {
	close(p.more)
	p.more = make(chan struct{})
}

// next returns the bytes after off available now; when there are none,
// whether the partial is over (and complete), or the channel that
// announces more.
func (p *partial) next(off int) (b []byte, done, complete bool, more <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if off < len(p.data) {
		return p.data[off:len(p.data):len(p.data)], false, false, nil
	}
	return nil, p.done, p.complete, p.more
}

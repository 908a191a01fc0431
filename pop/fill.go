package pop

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/internal/fastpath"
	"github.com/golivestream/live/internal/growbuf"
)

// errAborted is the error of a fill whose every reader left before it was
// complete: it was stopped and must not be cached.
var errAborted = errors.New("fill abandoned by every reader")

// fill is a response body arriving from upstream, readable by any number of
// readers while it arrives (a growbuf.Buffer), which also knows its readers:
// when the last one leaves before the body is complete, nobody wants it
// and the upstream transfer stops.
type fill struct {
	*growbuf.Buffer

	// arrived is when readFrom last appended bytes, in Unix nanoseconds;
	// zero before (live_pop_waiter_release_seconds).
	arrived atomic.Int64

	mu sync.Mutex
	// readers counts the readers attached; guarded by mu.
	readers int
	// cancel stops the upstream transfer.
	cancel context.CancelFunc
}

// newFill returns an empty fill expecting about size bytes (0 if unknown);
// cancel stops its producer.
func newFill(size int64, cancel context.CancelFunc) *fill {
	const maxPrealloc = 64 << 20
	return &fill{Buffer: growbuf.New(int(min(max(size, 0), maxPrealloc))), cancel: cancel}
}

// readFrom copies r into f until EOF or an error, then finishes f. A
// complete body is given to ready (if not nil) before f ends, so that
// what ready records of it is there before any reader sees its end.
func (f *fill) readFrom(r io.Reader, ready func(body []byte)) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			f.arrived.Store(time.Now().UnixNano())
			f.Append(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			if ready != nil {
				body, _, _, _ := f.Next(0)
				ready(body)
			}
			f.Finish(nil)
			return
		}
		if err != nil {
			f.Finish(err)
			return
		}
	}
}

// attach registers a reader; detach must follow.
func (f *fill) attach() {
	f.mu.Lock()
	f.readers++
	f.mu.Unlock()
}

// detach unregisters a reader. The last reader leaving an unfinished fill
// stops the upstream transfer: nobody wants it any more.
func (f *fill) detach() {
	f.mu.Lock()
	f.readers--
	stop := f.readers == 0 && f.cancel != nil && !f.Over()
	f.mu.Unlock()
	if stop {
		f.cancel()
		f.Finish(errAborted)
	}
}

// release forgets how to stop the producer of a fill that is over, so
// that a cached object does not keep its fetch's contexts alive.
func (f *fill) release() {
	f.mu.Lock()
	f.cancel = nil
	f.mu.Unlock()
}

// leave unregisters a reader that had all it asked for (a range): unlike
// detach, it does not stop the transfer, whose rest is still worth
// caching.
func (f *fill) leave() {
	f.mu.Lock()
	f.readers--
	f.mu.Unlock()
}

// completeAt reports whether the body is complete and end bytes long.
func (f *fill) completeAt(end int) bool {
	_, over, err, _ := f.Next(end)
	return over && err == nil
}

// wait blocks until the body is over or ctx is done, and returns its error.
func (f *fill) wait(ctx context.Context) error {
	for {
		_, over, err, more := f.Next(1 << 62)
		if over {
			return err
		}
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeSpan streams bytes [from, to) of the body to w as they arrive (to
// may be past its end), calling flush after each piece that is not the
// last, so a waiter gets bytes while they arrive. The last bytes of a
// complete body go with the body's end when w can send them so
// (fastpath.LastWriter): one write and one packet fewer per response
// streamed. It returns the bytes written and the fill's error, ctx's
// error if the reader left, or w's error.
func (f *fill) writeSpan(ctx context.Context, w io.Writer, flush func(), from, to int) (int, error) {
	lw, _ := w.(fastpath.LastWriter)
	off := from
	for off < to {
		p, over, err, more := f.Next(off)
		if over {
			return off - from, err
		}
		if len(p) > 0 {
			if len(p) >= to-off {
				p, more = p[:to-off], nil // the last bytes wanted
			}
			var n int
			var werr error
			if more == nil && lw != nil && f.completeAt(off+len(p)) {
				n, werr = lw.WriteLast(p)
			} else {
				n, werr = w.Write(p)
			}
			off += n
			if werr != nil {
				return off - from, werr
			}
			if more != nil && flush != nil {
				flush()
			}
			continue
		}
		select {
		case <-more:
		case <-ctx.Done():
			return off - from, ctx.Err()
		}
	}
	return off - from, nil
}

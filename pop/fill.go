package pop

import (
	"context"
	"errors"
	"io"
	"sync"
)

// errAborted is the error of a fill whose every reader left before it was
// complete: it was stopped and must not be cached.
var errAborted = errors.New("fill abandoned by every reader")

// fill is a response body arriving from upstream, readable by any number of
// readers while it arrives. Bytes once appended never change: readers share
// prefixes of one buffer without copying, each at its own pace, and are
// woken by a channel closed on every append, never by polling.
type fill struct {
	mu sync.Mutex
	// data holds the bytes received so far; guarded by mu. An append may
	// move it to a bigger array, but the prefix a reader already took stays
	// valid and unchanged in the old one.
	data []byte
	// done is set once the body is complete or failed; err says which.
	// Both guarded by mu.
	done bool
	err  error
	// more is closed and replaced whenever data grows or done is set;
	// guarded by mu.
	more chan struct{}
	// readers counts the readers attached; guarded by mu. When the last one
	// detaches before done, cancel stops the upstream transfer.
	readers int
	cancel  context.CancelFunc
}

// newFill returns an empty fill expecting about size bytes (0 if unknown);
// cancel stops its producer.
func newFill(size int64, cancel context.CancelFunc) *fill {
	const maxPrealloc = 64 << 20
	return &fill{
		data:   make([]byte, 0, min(max(size, 0), maxPrealloc)),
		more:   make(chan struct{}),
		cancel: cancel,
	}
}

// completeFill returns a fill holding body, already done.
func completeFill(body []byte) *fill {
	return &fill{data: body, done: true, more: make(chan struct{})}
}

// append adds p (copied) and wakes the readers.
func (f *fill) append(p []byte) {
	f.mu.Lock()
	f.data = append(f.data, p...)
	close(f.more)
	f.more = make(chan struct{})
	f.mu.Unlock()
}

// finish marks the body complete (err nil) or failed, and wakes the readers.
func (f *fill) finish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	f.done, f.err = true, err
	close(f.more)
	f.more = make(chan struct{})
}

// readFrom copies r into f until EOF or an error, then finishes f.
func (f *fill) readFrom(r io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			f.append(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			f.finish(nil)
			return
		}
		if err != nil {
			f.finish(err)
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
	stop := f.readers == 0 && !f.done && f.cancel != nil
	f.mu.Unlock()
	if stop {
		f.cancel()
		f.finish(errAborted)
	}
}

// leave unregisters a reader that had all it asked for (a range): unlike
// detach, it does not stop the transfer, whose rest is still worth
// caching.
func (f *fill) leave() {
	f.mu.Lock()
	f.readers--
	f.mu.Unlock()
}

// next returns the bytes after offset off that are available now, and
// whether the body is over (with its error). When nothing is available and
// the body goes on, it returns the channel that announces more; when bytes
// are returned, more is nil if they are the last ones.
func (f *fill) next(off int) (p []byte, over bool, err error, more <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < len(f.data) {
		if !f.done {
			more = f.more
		}
		return f.data[off:len(f.data):len(f.data)], false, nil, more
	}
	if f.done {
		return nil, true, f.err, nil
	}
	return nil, false, nil, f.more
}

// bytes returns the complete body, or nil and false if not complete.
func (f *fill) bytes() ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done || f.err != nil {
		return nil, false
	}
	return f.data[:len(f.data):len(f.data)], true
}

// wait blocks until the body is over or ctx is done, and returns its error.
func (f *fill) wait(ctx context.Context) error {
	for {
		_, over, err, more := f.next(1 << 62)
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
// last, so a waiter gets bytes while they arrive. It returns the bytes
// written and the fill's error, ctx's error if the reader left, or w's
// error.
func (f *fill) writeSpan(ctx context.Context, w io.Writer, flush func(), from, to int) (int, error) {
	off := from
	for off < to {
		p, over, err, more := f.next(off)
		if over {
			return off - from, err
		}
		if len(p) > 0 {
			if len(p) >= to-off {
				p, more = p[:to-off], nil // the last bytes wanted
			}
			n, werr := w.Write(p)
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

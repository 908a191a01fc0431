package loadtest

import (
	"fmt"
	"io"
	"sync"
)

// laneBody reads the body of the response a lane is reading, as it
// arrives, its framing undone (RFC 9112 6.3: Content-Length, chunked, or
// to the connection's close), for walkChunks: the lane's boxReader. It
// lives in its lane, so that handing it over allocates nothing. Not safe
// for concurrent use.
type laneBody struct {
	l       *lane
	chunked bool
	// left is what is left of the body (not chunked) or of the current
	// chunk (chunked); -1 runs to the connection's close.
	left    int64
	started bool // chunked: the first chunk-size line was read
	eof     bool
}

// reset makes b read the body h announces.
func (b *laneBody) reset(l *lane, h *head) {
	*b = laneBody{l: l, chunked: h.chunked, left: h.length}
	switch {
	case h.noBody:
		b.left, b.eof = 0, true
	case h.chunked:
		b.left = 0
	}
}

// next makes sure bytes are left to read: in a chunked body, it reads
// the next chunk-size line (RFC 9112 7.1) when the current chunk is
// done. It returns io.EOF at the body's end.
func (b *laneBody) next() error {
	if b.eof {
		return io.EOF
	}
	if b.left != 0 {
		return nil
	}
	if !b.chunked {
		b.eof = true
		return io.EOF
	}
	l := b.l
	if b.started {
		if line, err := l.readLine(); err != nil || len(line) != 0 {
			return fmt.Errorf("malformed chunk end: %w", unexpectedEOF(err))
		}
	}
	b.started = true
	line, err := l.readLine()
	if err != nil {
		return unexpectedEOF(err)
	}
	size, ok := parseChunkSize(line)
	if !ok {
		return fmt.Errorf("malformed chunk size %q", line)
	}
	if size > 0 {
		b.left = size
		return nil
	}
	for { // trailers, dropped
		if line, err = l.readLine(); err != nil {
			return unexpectedEOF(err)
		}
		if len(line) == 0 {
			b.eof = true
			return io.EOF
		}
	}
}

// read reads what has arrived of the body, up to len(p) > 0 bytes.
func (b *laneBody) read(p []byte) (int, error) {
	if err := b.next(); err != nil {
		return 0, err
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	l := b.l
	var n int
	if l.r < l.w {
		n = copy(p, l.rbuf[l.r:l.w])
		l.r += n
	} else {
		var err error
		for n == 0 && err == nil {
			n, err = l.nc.Read(p)
		}
		if n == 0 {
			if err == io.EOF && b.left < 0 {
				b.eof = true
				return 0, io.EOF
			}
			return 0, unexpectedEOF(err)
		}
	}
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, nil
}

func (b *laneBody) readFull(p []byte) error {
	for i := 0; i < len(p); {
		n, err := b.read(p[i:])
		if err != nil {
			if err == io.EOF && i == 0 {
				return io.EOF
			}
			return unexpectedEOF(err)
		}
		i += n
	}
	return nil
}

// skip drops the next n bytes of the body: what the lane has buffered,
// then the rest in the kernel (discardRaw) or through a pooled buffer.
func (b *laneBody) skip(n int64) error {
	l := b.l
	for n > 0 {
		if err := b.next(); err != nil {
			return unexpectedEOF(err)
		}
		m := n
		if b.left > 0 {
			m = min(m, b.left)
		}
		if l.r < l.w {
			done := min(m, int64(l.w-l.r))
			l.r += int(done)
			n -= done
			if b.left > 0 {
				b.left -= done
			}
			continue
		}
		var done int64
		var err error
		switch {
		case l.raw != nil:
			done, err = l.discardRaw(m)
		default:
			l.lim = io.LimitedReader{R: l.nc, N: m}
			done, err = discard(l.sh.bufs, &l.lim)
		}
		n -= done
		if b.left > 0 {
			b.left -= done
		}
		if err == nil && done < m {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return unexpectedEOF(err)
		}
	}
	return nil
}

// readerBody is a boxReader over an io.Reader: net/http's response body,
// for netHTTPGetter.
type readerBody struct {
	r    io.Reader
	bufs *sync.Pool
}

func (b *readerBody) readFull(p []byte) error {
	_, err := io.ReadFull(b.r, p)
	return err
}

func (b *readerBody) skip(n int64) error {
	got, err := discard(b.bufs, io.LimitReader(b.r, n))
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// maxManifestBytes bounds a playlist or MPD we read.
const maxManifestBytes = 4 << 20

// errStopped is returned by requests cut short because the player stops:
// not a failure of the system under test.
var errStopped = errors.New("player stopped")

// fetchError is a failed request, classified.
type fetchError struct {
	kind   errKind
	status int // for errStatus
	err    error
}

func (e *fetchError) Error() string {
	if e.kind == errStatus {
		return fmt.Sprintf("status %d", e.status)
	}
	return e.kind.String() + ": " + e.err.Error()
}

func (e *fetchError) Unwrap() error { return e.err }

// kindName names an error kind in reports: the status for HTTP statuses.
func kindName(k errKind, status int) string {
	if k == errStatus {
		return fmt.Sprint(status)
	}
	return k.String()
}

// classify names what went wrong with a request.
func classify(err error, inBody bool) errKind {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case inBody:
		return errAborted
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &oe) && oe.Op == "dial":
		return errConnect
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return errAborted
	}
	return errOther
}

// fetch GETs u, records it as class c and returns the body (with keep)
// and the final URL (after redirects). A failure is recorded and returned
// as a *fetchError; a request cut short because ctx is done returns
// errStopped and is not recorded.
func (p *player) fetch(ctx context.Context, u string, c class, keep bool) ([]byte, *url.URL, error) {
	t0 := time.Now()
	body, final, n, err := p.do(ctx, u, keep)
	if err != nil {
		if fe, ok := err.(*fetchError); ok {
			return nil, nil, p.fail(fe)
		}
		return nil, nil, err
	}
	end := time.Now()
	p.r.rec.request(c, end, end.Sub(t0), n)
	return body, final, nil
}

// do GETs u without recording anything. With keep the body is read into
// p.buf and returned; otherwise it is read and discarded without
// allocating. It returns the final URL and the body's length.
func (p *player) do(ctx context.Context, u string, keep bool) ([]byte, *url.URL, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, p.r.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, &fetchError{kind: errOther, err: err}
	}
	req.Header.Set("User-Agent", p.ua)
	resp, err := p.r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, 0, errStopped
		}
		return nil, nil, 0, &fetchError{kind: classify(err, false), err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, nil, 0, &fetchError{kind: errStatus, status: resp.StatusCode, err: errors.New(resp.Status)}
	}
	var n int64
	if keep {
		p.buf, err = readAll(p.buf[:0], resp.Body, maxManifestBytes)
		n = int64(len(p.buf))
	} else {
		n, err = p.r.discard(resp.Body)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, 0, errStopped
		}
		return nil, nil, 0, &fetchError{kind: classify(err, true), err: err}
	}
	if !keep {
		return nil, resp.Request.URL, n, nil
	}
	return p.buf, resp.Request.URL, n, nil
}

// discardBufSize is the size of the buffers bodies are read into and
// dropped: large reads mean few system calls per segment.
const discardBufSize = 64 << 10

// discard reads body to its end into a pooled buffer and drops it.
func (r *run) discard(body io.Reader) (int64, error) {
	bp, _ := r.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, discardBufSize)
		bp = &b
	}
	defer r.bufs.Put(bp)
	var n int64
	for {
		m, err := body.Read(*bp)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fail records a failed request now and returns it.
func (p *player) fail(e *fetchError) error {
	p.r.rec.failure(e.kind, e.status, time.Now())
	return e
}

// readAll appends r's bytes to buf, up to limit bytes.
func readAll(buf []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, errors.New("body too large")
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// userAgent is what players send.
const userAgent = "golivestream-loadtest/1"

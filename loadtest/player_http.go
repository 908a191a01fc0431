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
	"sync"
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

// getter makes a player's GET requests, one at a time: a lane (the load
// generator's own client) or a netHTTPGetter (Config.Transport).
type getter interface {
	// do makes rq, following redirects (see getRequest). With rq.keep
	// the body is returned with the URL it came from (after redirects);
	// otherwise it is dropped, or read as chunks, and the URL may be
	// nil. It returns the body's length. Failures are *fetchError, not
	// recorded; a request stopped because the player's context is done
	// returns errStopped.
	do(rq getRequest) ([]byte, *url.URL, int64, error)
	// close releases the getter's connections.
	close()
}

// newGetter returns a getter for a player sending ua, whose requests stop
// when ctx is done.
func (r *run) newGetter(ctx context.Context, ua string) getter {
	if r.client != nil {
		return &netHTTPGetter{ctx: ctx, r: r, ua: ua}
	}
	return newLane(ctx, &r.lanes, ua)
}

// fetch makes rq on g and records it as class c. It returns the body
// (with rq.keep), the final URL (after redirects) and when the body's
// last byte arrived. A failure is recorded and returned as a
// *fetchError; a request cut short because the player stops returns
// errStopped and is not recorded.
func (p *player) fetch(g getter, rq getRequest, c class) ([]byte, *url.URL, time.Time, error) {
	t0 := time.Now()
	body, final, n, err := g.do(rq)
	if err != nil {
		if fe, ok := err.(*fetchError); ok {
			return nil, nil, time.Time{}, p.fail(fe)
		}
		return nil, nil, time.Time{}, err
	}
	end := time.Now()
	p.r.rec.request(c, end, end.Sub(t0), n)
	return body, final, end, nil
}

// fetchManifest GETs base (with query, when not nil) as a playlist or
// MPD into *buf, which keeps the bytes for the next one.
func (p *player) fetchManifest(g getter, base *url.URL, query []byte, buf *[]byte) ([]byte, *url.URL, error) {
	body, final, _, err := p.fetch(g, getRequest{base: base, query: query, keep: true, buf: *buf}, classPlaylist)
	if body != nil {
		*buf = body
	}
	return body, final, err
}

// netHTTPGetter makes requests with net/http's client over
// Config.Transport, as players did before #20: per request a
// *http.Request, a context with a timer, and the transport's read and
// write goroutines per connection. Not safe for concurrent use.
type netHTTPGetter struct {
	ctx context.Context // the player's
	r   *run
	ua  string
	hdr [16]byte
	// moof is the last moof of a body read as chunks.
	moof []byte
}

func (g *netHTTPGetter) close() {}

func (g *netHTTPGetter) do(rq getRequest) ([]byte, *url.URL, int64, error) {
	u, err := resolve(rq.base, rq.ref)
	if err != nil {
		return nil, nil, 0, err
	}
	if rq.query != nil {
		u = withQuery(u, rq.query)
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.r.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, 0, &fetchError{kind: errOther, err: err}
	}
	req.Header.Set("User-Agent", g.ua)
	resp, err := g.r.client.Do(req)
	if err != nil {
		if g.ctx.Err() != nil {
			return nil, nil, 0, errStopped
		}
		return nil, nil, 0, &fetchError{kind: classify(err, false), err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, nil, 0, &fetchError{kind: errStatus, status: resp.StatusCode, err: errors.New(resp.Status)}
	}
	var n int64
	buf := rq.buf
	switch {
	case rq.sink != nil:
		n, err = walkChunks(&readerBody{r: resp.Body, bufs: &g.r.bufs}, &g.hdr, &g.moof, rq.sink)
	case rq.keep:
		buf, err = readAll(buf[:0], resp.Body, maxManifestBytes)
		n = int64(len(buf))
	default:
		n, err = discard(&g.r.bufs, resp.Body)
	}
	if err != nil {
		if g.ctx.Err() != nil {
			return nil, nil, 0, errStopped
		}
		return nil, nil, 0, &fetchError{kind: classify(err, true), err: err}
	}
	final := resp.Request.URL
	if rq.query != nil {
		final = withoutQuery(final, rq.query)
	}
	return buf, final, n, nil
}

// discardBufSize is the size of the buffers bodies are read into and
// dropped, where the kernel cannot drop them: large reads mean few system
// calls per segment.
const discardBufSize = 64 << 10

// discard reads body to its end into a buffer of bufs (of *[]byte) and
// drops it.
func discard(bufs *sync.Pool, body io.Reader) (int64, error) {
	bp, _ := bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, discardBufSize)
		bp = &b
	}
	defer bufs.Put(bp)
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

// readAll appends r's bytes to buf, up to limit (> 0) bytes.
func readAll(buf []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, errTooLarge
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

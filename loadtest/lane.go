package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxRedirects is how many redirects a request follows, as net/http's
// client does.
const maxRedirects = 10

// discardScratchSize bounds what one recv(2) drops in discardRaw: a
// segment in one call or a few.
const discardScratchSize = 1 << 20

// maxErrorBody bounds the body of an error status read to keep the
// connection; a larger one closes it.
const maxErrorBody = 64 << 10

// laneShared is what a run's lanes share. Immutable once made, but for
// bufs, which is safe for concurrent use.
type laneShared struct {
	// timeout bounds each request, redirects and body included.
	timeout time.Duration
	dialer  net.Dialer
	// tls configures https connections; nil means crypto/tls's defaults
	// (the system's roots), with the URL's host as the server name.
	tls *tls.Config
	// bufs holds *[]byte of discardBufSize: where bodies that cannot be
	// dropped in the kernel (TLS, other systems) are read and dropped.
	bufs *sync.Pool
	// scratch is the buffer named to recv(2) with MSG_TRUNC, which writes
	// nothing to it: shared by every lane.
	scratch []byte
}

// lane is one of a player's ways to the servers, the load generator's own
// HTTP/1.1 client: one keep-alive connection, one GET at a time. It
// follows redirects and then stays on the host it was sent to, reads
// Content-Length, chunked and close-delimited bodies, keeps a body in a
// buffer of the caller's or drops it without copying it out of the kernel
// (see discardRaw), and bounds each request by the connection's read
// deadline: no goroutine, context or timer of its own per request. (A
// request is small and sent once the last response was read: its write
// does not block.) The end of the player's context stops the request
// under way. Not safe for concurrent use.
type lane struct {
	sh  *laneShared
	ctx context.Context // the player's: when done, requests stop
	ua  string          // the User-Agent sent

	nc     net.Conn
	raw    syscall.RawConn // nc's, for discardRaw; nil for TLS and where unsupported
	scheme string          // of the URL nc was dialed for
	host   string          // the URL's host (and port) nc was dialed for
	served int             // responses read on nc
	unhook func() bool     // stops the context hook of nc

	rbuf     []byte // responses are read through it: rbuf[r:w] is unread
	r, w     int
	received int64            // bytes read into rbuf, ever
	wbuf     []byte           // the request being sent
	lim      io.LimitedReader // reused by copyN and laneBody.skip

	// For bodies read as CMAF chunks (getRequest.sink): the body, box
	// headers and the last moof.
	lb   laneBody
	hdr  [16]byte
	moof []byte

	// The state of a discardRaw under way, for the rawTrunc callback.
	want, got int64
	untilEOF  bool
	rawErr    error
	truncFn   func(fd uintptr) bool // l.rawTrunc, made once
}

// newLane returns a lane sending ua, whose requests stop when ctx is done.
func newLane(ctx context.Context, sh *laneShared, ua string) *lane {
	l := &lane{sh: sh, ctx: ctx, ua: ua, rbuf: make([]byte, 4<<10), wbuf: make([]byte, 0, 256)}
	l.truncFn = l.rawTrunc
	return l
}

// close closes the lane's connection, if any.
func (l *lane) close() {
	if l.nc == nil {
		return
	}
	l.unhook()
	l.nc.Close()
	l.nc, l.raw, l.served, l.r, l.w = nil, nil, 0, 0, 0
}

// getRequest is a GET a getter makes.
type getRequest struct {
	// base and ref: the URL is ref resolved against base (base itself
	// when ref is "").
	base *url.URL
	ref  string
	// query, when not nil, is added to base's query (ref must be ""):
	// LL-HLS delivery directives, written by the player in a buffer of
	// its own. The URL returned is without them.
	query []byte
	// keep asks for the body: appended to buf[:0] and returned with the
	// URL it came from (after redirects). Otherwise the body is dropped.
	keep bool
	buf  []byte
	// sink, when set (without keep), reads the body as CMAF chunks as
	// they arrive (walkChunks).
	sink chunkSink
}

// get GETs ref resolved against base (base itself when ref is ""): do
// with a body kept in buf or dropped.
func (l *lane) get(base *url.URL, ref string, keep bool, buf []byte) ([]byte, *url.URL, int64, error) {
	return l.do(getRequest{base: base, ref: ref, keep: keep, buf: buf})
}

// do makes rq, following redirects. With rq.keep it returns the body and
// the URL it came from; otherwise the URL is nil. It returns the body's
// length. Failures are *fetchError, not recorded; a request stopped
// because the player's context is done returns errStopped.
func (l *lane) do(rq getRequest) ([]byte, *url.URL, int64, error) {
	base, ref, keep, buf := rq.base, rq.ref, rq.keep, rq.buf
	deadline := time.Now().Add(l.sh.timeout)
	var cur *url.URL // the URL asked once it is not just base and ref
	for redirects := 0; ; redirects++ {
		u := base
		l.wbuf = append(l.wbuf[:0], "GET "...)
		switch {
		case cur == nil && rq.query != nil:
			l.wbuf = appendRequestURI(l.wbuf, base)
			if base.RawQuery != "" {
				l.wbuf = append(l.wbuf, '&')
			} else {
				l.wbuf = append(l.wbuf, '?')
			}
			l.wbuf = append(l.wbuf, rq.query...)
		case cur == nil:
			t, ok := appendTarget(l.wbuf, base, ref)
			if ok {
				l.wbuf = t
			} else {
				var err error
				if cur, err = resolve(base, ref); err != nil {
					return nil, nil, 0, err
				}
			}
		}
		if cur != nil {
			u = cur
			l.wbuf = appendRequestURI(l.wbuf, cur)
		}
		l.wbuf = append(l.wbuf, " HTTP/1.1\r\nHost: "...)
		l.wbuf = append(l.wbuf, u.Host...)
		l.wbuf = append(l.wbuf, "\r\nUser-Agent: "...)
		l.wbuf = append(l.wbuf, l.ua...)
		l.wbuf = append(l.wbuf, "\r\n\r\n"...)

		h, err := l.roundTrip(u, deadline)
		if err != nil {
			return nil, nil, 0, l.failed(err, false)
		}
		switch {
		case h.status == 200 && rq.sink != nil:
			l.lb.reset(l, &h)
			n, err := walkChunks(&l.lb, &l.hdr, &l.moof, rq.sink)
			if err != nil {
				return nil, nil, 0, l.failed(err, true)
			}
			l.done(&h)
			return nil, nil, n, nil
		case h.status == 200:
			var body []byte
			var n int64
			limit := 0 // segments: any length
			if keep {
				limit = maxManifestBytes
			}
			if body, n, err = l.body(&h, keep, buf, limit); err != nil {
				return nil, nil, 0, l.failed(err, true)
			}
			if !keep {
				return nil, nil, n, nil
			}
			if cur == nil {
				if cur, err = resolve(base, ref); err != nil {
					return nil, nil, 0, err
				}
			} else if rq.query != nil {
				cur = withoutQuery(cur, rq.query) // redirected
			}
			return body, cur, n, nil
		case isRedirect(h.status) && h.location != "":
			if _, _, berr := l.body(&h, false, nil, maxErrorBody); berr != nil {
				l.close() // not worth keeping; the next request dials
			}
			if redirects == maxRedirects {
				return nil, nil, 0, &fetchError{kind: errOther, err: errors.New("stopped after 10 redirects")}
			}
			if cur == nil {
				if rq.query != nil {
					cur = withQuery(base, rq.query)
				} else if cur, err = resolve(base, ref); err != nil {
					return nil, nil, 0, err
				}
			}
			next, perr := cur.Parse(h.location)
			if perr != nil || (next.Scheme != "http" && next.Scheme != "https") {
				return nil, nil, 0, &fetchError{kind: errOther, err: fmt.Errorf("bad redirect %q", h.location)}
			}
			cur = next
		default:
			if _, _, berr := l.body(&h, false, nil, maxErrorBody); berr != nil {
				l.close()
			}
			return nil, nil, 0, &fetchError{kind: errStatus, status: h.status, err: fmt.Errorf("status %d", h.status)}
		}
	}
}

// withQuery returns a copy of u with query added to its own.
func withQuery(u *url.URL, query []byte) *url.URL {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery += "&" + string(query)
	} else {
		c.RawQuery = string(query)
	}
	return &c
}

// withoutQuery returns u without query at the end of its own, where a
// redirect kept it.
func withoutQuery(u *url.URL, query []byte) *url.URL {
	q, ok := strings.CutSuffix(u.RawQuery, string(query))
	if !ok || q != "" && !strings.HasSuffix(q, "&") {
		return u
	}
	c := *u
	c.RawQuery, c.ForceQuery = strings.TrimSuffix(q, "&"), false
	return &c
}

// resolve returns ref resolved against base: base itself when ref is "".
// Failures are *fetchError of kind errParse.
func resolve(base *url.URL, ref string) (*url.URL, error) {
	if ref == "" {
		return base, nil
	}
	u, err := base.Parse(ref)
	if err != nil {
		return nil, &fetchError{kind: errParse, err: err}
	}
	return u, nil
}

// isRedirect reports whether status is one net/http's client follows.
func isRedirect(status int) bool {
	switch status {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// failed closes the connection after err, which left it in an unknown
// state, and classifies err: errStopped when the player stops.
func (l *lane) failed(err error, inBody bool) error {
	l.close()
	if l.ctx.Err() != nil {
		return errStopped
	}
	var fe *fetchError
	if errors.As(err, &fe) {
		return fe
	}
	return &fetchError{kind: classify(err, inBody), err: err}
}

// roundTrip sends l.wbuf to u's host and reads the response's head,
// dialing when the lane has no connection to that host. A connection that
// served before and fails before the response's first byte was likely
// closed by the server while idle: the request is sent again, once, on a
// new one, as net/http's client does.
func (l *lane) roundTrip(u *url.URL, deadline time.Time) (head, error) {
	for retry := true; ; retry = false {
		if l.nc != nil && (l.scheme != u.Scheme || l.host != u.Host) {
			l.close() // redirected elsewhere: the player stays there
		}
		if l.nc == nil {
			if err := l.dial(u, deadline); err != nil {
				return head{}, err
			}
		} else if err := l.nc.SetReadDeadline(deadline); err != nil {
			return head{}, err
		}
		// The context hook sets a past deadline once the player stops;
		// setting ours may have undone it, but not if ctx is still live
		// now: the hook runs after ctx reports done.
		if l.ctx.Err() != nil {
			return head{}, errStopped
		}
		reused := l.served > 0
		if _, err := l.nc.Write(l.wbuf); err != nil {
			if reused && retry && staleConn(err) {
				l.close()
				continue
			}
			return head{}, err
		}
		h, started, err := l.readHead()
		if err != nil && reused && retry && !started && staleConn(err) {
			l.close()
			continue
		}
		return h, err
	}
}

// staleConn reports whether err is what a connection closed by the
// server gives.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dial connects to u's host, with deadline.
func (l *lane) dial(u *url.URL, deadline time.Time) error {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	d := l.sh.dialer
	d.Deadline = deadline
	nc, err := d.DialContext(l.ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if err = nc.SetReadDeadline(deadline); err != nil {
		nc.Close()
		return err
	}
	l.raw = nil
	if u.Scheme == "https" {
		cfg := l.sh.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		nc = tls.Client(nc, cfg)
	} else if tc, ok := nc.(*net.TCPConn); ok && canDiscardRaw {
		if l.raw, err = tc.SyscallConn(); err != nil {
			l.raw = nil
		}
	}
	l.nc, l.scheme, l.host, l.served, l.r, l.w = nc, u.Scheme, u.Host, 0, 0, 0
	// A deadline in the past stops a read or write under way at once.
	l.unhook = context.AfterFunc(l.ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	return nil
}

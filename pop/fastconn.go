package pop

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// fastReadBuffer is the fast path's read buffer per connection: a request
// head that does not fit goes to net/http.
const fastReadBuffer = 4 << 10

// errTooManyFiles is accept's error when the process is out of
// descriptors: worth a retry after a pause, as net/http does.
const errTooManyFiles = syscall.EMFILE

// fastConn is one connection on the fast path (server_fast.go).
type fastConn struct {
	f  *fastServer
	nc net.Conn
	br *bufio.Reader

	mu   sync.Mutex
	idle bool // waiting for a request: Close ends it; guarded by mu

	// The request is reused from one to the next; so are the strings of
	// its target, path, query, Host and headers while they repeat, as
	// they do for a player or a CDN edge on one connection.
	req   *http.Request
	vals  [fastHeaderCount][1]string
	w     fastWriter
	watch *departureWatch
}

// serve answers fast requests until the connection ends or a request
// needs net/http.
func (c *fastConn) serve() {
	handed := false
	defer func() {
		if !handed {
			c.f.forget(c)
			c.nc.Close()
		}
	}()
	// The connection's context is every request's: it ends when the
	// client leaves during one (departureWatch), or at shutdown's end.
	ctx, cancel := context.WithCancel(c.f.ctx)
	defer cancel()
	c.watch = newDepartureWatch(c, cancel)
	c.req = (&http.Request{
		Method: http.MethodGet, URL: &url.URL{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, fastHeaderCount), Body: http.NoBody, RemoteAddr: c.nc.RemoteAddr().String(),
	}).WithContext(ctx)
	c.w = fastWriter{nc: c.nc, closing: &c.f.closing, header: make(http.Header, 8)}
	handler := c.f.hs.Handler
	if handler == nil {
		handler = c.f.s
	}
	var h fastHead
	for {
		n, err := c.readHead()
		if err != nil {
			return // closed, timed out or shut down: as net/http, nothing to say
		}
		if n < 0 || !parseFastHead(c.buffered(n), &h) {
			handed = true
			c.f.handOver(c)
			return
		}
		c.f.s.metrics.fastRequests.Inc()
		c.setRequest(&h)
		c.br.Discard(n)
		if t := c.f.hs.WriteTimeout; t > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(t))
		}
		c.w.reset(h.head, h.close)
		if !c.handle(handler) || c.w.close || !c.setIdle(false) {
			return
		}
	}
}

// buffered returns the first n bytes buffered, which are there.
func (c *fastConn) buffered(n int) []byte {
	b, _ := c.br.Peek(n)
	return b
}

// readHead waits for a complete request head and returns its length, or
// -1 if it does not fit the buffer. The connection is idle until its
// first byte, then busy.
func (c *fastConn) readHead() (int, error) {
	if c.br.Buffered() == 0 {
		if _, err := c.br.Peek(1); err != nil { // under the deadline set by setIdle
			return 0, err
		}
	}
	c.setBusy()
	c.nc.SetReadDeadline(deadline(c.f.hs.ReadHeaderTimeout, c.f.hs.ReadTimeout))
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if n := headEnd(b); n >= 0 {
			return n, nil
		}
		if len(b) == c.br.Size() {
			return -1, nil
		}
		if _, err := c.br.Peek(len(b) + 1); err != nil {
			return 0, err
		}
	}
}

// deadline is now plus the first positive timeout, or no deadline.
func deadline(timeouts ...time.Duration) time.Time {
	for _, t := range timeouts {
		if t > 0 {
			return time.Now().Add(t)
		}
	}
	return time.Time{}
}

// setRequest makes c.req the request h describes.
func (c *fastConn) setRequest(h *fastHead) {
	r := c.req
	r.Method = http.MethodGet
	if h.head {
		r.Method = http.MethodHead
	}
	if string(h.path) != r.URL.Path {
		r.URL.Path = string(h.path)
	}
	if string(h.query) != r.URL.RawQuery {
		r.URL.RawQuery = string(h.query)
	}
	if string(h.target) != r.RequestURI {
		r.RequestURI = string(h.target)
	}
	if string(h.host) != r.Host {
		r.Host = string(h.host)
	}
	r.Close = h.close
	clear(r.Header)
	for i, v := range h.header {
		if v == nil {
			continue
		}
		if string(v) != c.vals[i][0] {
			c.vals[i][0] = string(v)
		}
		r.Header[fastHeaderNames[i]] = c.vals[i][:]
	}
}

// handle runs the handler on c.req and finishes the response, and reports
// whether the connection may serve another request. A handler that panics
// with http.ErrAbortHandler (an upstream failure mid-body) aborts the
// response, as net/http does; any other panic is logged too.
func (c *fastConn) handle(handler http.Handler) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.f.s.log.Error("panic serving", "remote", c.req.RemoteAddr, "path", c.req.URL.Path, "panic", p, "stack", string(buf))
			}
		}
	}()
	if c.watch.arm() {
		defer c.watch.disarm() // before the recover above: the watcher is gone when a panic is logged
	}
	handler.ServeHTTP(&c.w, c.req)
	return c.w.finish() == nil && c.req.Context().Err() == nil
}

// setIdle marks c as waiting for its next request, and reports false if
// the server is closing and c must end instead. As with net/http, the
// first request must arrive within ReadHeaderTimeout of the connection,
// so that a client that connects and sends nothing is gone as soon as
// one that sends half a head; a later one within IdleTimeout of the
// previous response. The deadline is set under mu so that Close's cannot
// be overwritten.
func (c *fastConn) setIdle(first bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f.closing.Load() {
		return false
	}
	c.idle = true
	hs := c.f.hs
	if first {
		c.nc.SetReadDeadline(deadline(hs.ReadHeaderTimeout, hs.ReadTimeout))
	} else {
		c.nc.SetReadDeadline(deadline(hs.IdleTimeout, hs.ReadTimeout))
	}
	return true
}

// setBusy marks c as reading or answering a request: Close lets it finish.
func (c *fastConn) setBusy() {
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
}

package fastpath

import (
	"bufio"
	"context"
	"errors"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"time"
)

// readBuffer is the fast path's read buffer per connection: a request
// head that does not fit goes to net/http.
const readBuffer = 4 << 10

// conn is one connection on the fast path.
type conn struct {
	l    *listener
	nc   net.Conn
	sock *sock // nc's, which the fast path reads and writes
	// br reads sock while the connection has a request's bytes to read;
	// an idle connection gives it back to the listener's pool, as nginx
	// frees an idle connection's header buffer: the buffer of the next
	// request is one just used, still in the CPU's cache, and idle
	// connections hold none. Nil while idle.
	br *bufio.Reader

	mu   sync.Mutex
	idle bool // waiting for a request: Close ends it; guarded by mu

	// The request is reused from one to the next; so are the strings of
	// its target, path, query, Host and headers while they repeat, as
	// they do for a player or a CDN edge on one connection.
	req   *http.Request
	vals  [][1]string // by index of the parser's names
	w     writer
	watch *departureWatch

	// readBy and writeBy are the deadlines last set (zero: none), which
	// move only when they would move by a sixteenth of their timeout
	// (moved). Owned by serve's goroutine.
	readBy, writeBy time.Time
	// present has bit i set when the request in req.Header has the
	// parser's header i.
	present uint64
	// partial is set while a request head came in part: it has its
	// deadline (readHead).
	partial bool
}

// serve answers fast requests until the connection ends or a request
// needs net/http.
func (c *conn) serve() {
	handed := false
	defer func() {
		if !handed {
			c.l.forget(c)
			c.nc.Close()
		}
	}()
	s := c.l.s
	// The connection's context is every request's: it ends when the
	// client leaves during one (departureWatch), or at shutdown's end.
	ctx, cancel := context.WithCancel(c.l.ctx)
	defer cancel()
	c.watch = newDepartureWatch(c, cancel)
	c.req = (&http.Request{
		Method: http.MethodGet, URL: &url.URL{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, len(s.parser.names)), Body: http.NoBody, RemoteAddr: c.nc.RemoteAddr().String(),
	}).WithContext(ctx)
	c.vals = make([][1]string, len(s.parser.names))
	c.w = writer{sock: c.sock, closing: &c.l.closing, date: &s.date, header: make(http.Header, 8)}
	h := s.parser.newHead()
	// step answers requests until it must wait for bytes (false) or the
	// connection is done with the fast path (true); the sock calls it
	// again when bytes come. An error of the wait (closed, timed out or
	// shut down) ends the connection: as net/http, with nothing to say.
	c.sock.serve(func() bool {
		if c.br == nil {
			c.br = c.l.reader(c.sock)
		}
		for {
			n, err := c.readHead()
			if err == errWouldBlock {
				if c.br.Buffered() == 0 { // idle: its buffer goes back
					c.l.putReader(c.br)
					c.br = nil
				}
				return false
			}
			if err != nil {
				return true
			}
			if n < 0 || !s.parser.parse(c.buffered(n), &h) {
				handed = true
				return true
			}
			s.cfg.Answered()
			c.setRequest(&h)
			c.br.Discard(n)
			if t := s.cfg.HTTP.WriteTimeout; t > 0 {
				if d := time.Now().Add(t); moved(c.writeBy, d, t) {
					c.nc.SetWriteDeadline(d)
					c.writeBy = d
				}
			}
			c.w.reset(h.isHead, h.close)
			if !c.handle(s.cfg.Handler) || c.w.close || !c.setIdle(false) {
				return true
			}
		}
	})
	if handed {
		c.l.handOver(c) // outside serve: net/http reads the connection
	} else if c.br != nil {
		c.l.putReader(c.br)
		c.br = nil
	}
}

// errWouldBlock is a sock's Read's error when the socket has nothing to
// read yet: the request loop waits for it (sock.serve).
var errWouldBlock = errors.New("fastpath: nothing to read yet")

// buffered returns the first n bytes buffered, which are there.
func (c *conn) buffered(n int) []byte {
	b, _ := c.br.Peek(n)
	return b
}

// readHead reads a complete request head and returns its length, or -1
// if it does not fit the buffer; errWouldBlock when it must wait for more
// bytes, and is called again. The connection is idle until its first
// byte, then busy. A head that came whole with its first bytes, as nearly
// all do, is not given a deadline of its own; one that did not has one
// from its first bytes, which later bytes do not push back.
func (c *conn) readHead() (int, error) {
	if c.br.Buffered() == 0 {
		if _, err := c.br.Peek(1); err != nil { // under the deadline set by setIdle
			return 0, err
		}
	}
	if !c.partial {
		c.setBusy()
	}
	if n := headEnd(c.buffered(c.br.Buffered())); n >= 0 {
		c.partial = false
		return n, nil
	}
	if !c.partial {
		c.partial = true
		hs := c.l.s.cfg.HTTP
		c.setReadDeadline(deadline(hs.ReadHeaderTimeout, hs.ReadTimeout))
	}
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if n := headEnd(b); n >= 0 {
			return n, nil
		}
		if len(b) == c.br.Size() {
			c.partial = false
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
func (c *conn) setRequest(h *head) {
	r := c.req
	r.Method = http.MethodGet
	if h.isHead {
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
	// The Header's values are c.vals's arrays: a request with the same
	// headers as the last (as a player's or an edge's next one) changes
	// none of its entries, only the values that changed. Handlers do not
	// modify the request (http.Handler).
	var present uint64
	for i, v := range h.header {
		if v == nil {
			continue
		}
		present |= 1 << i
		if string(v) != c.vals[i][0] {
			c.vals[i][0] = string(v)
		}
	}
	if present != c.present || len(r.Header) != bits.OnesCount64(present) {
		clear(r.Header)
		for i, name := range c.l.s.parser.names {
			if present&(1<<i) != 0 {
				r.Header[name] = c.vals[i][:]
			}
		}
		c.present = present
	}
}

// handle runs the handler on c.req and finishes the response, and reports
// whether the connection may serve another request. A handler that panics
// with http.ErrAbortHandler (an upstream failure mid-body) aborts the
// response, as net/http does; any other panic is logged too.
func (c *conn) handle(handler http.Handler) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.l.s.log.Error("panic serving", "remote", c.req.RemoteAddr, "path", c.req.URL.Path, "panic", p, "stack", string(buf))
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
func (c *conn) setIdle(first bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l.closing.Load() {
		return false
	}
	c.idle = true
	hs := c.l.s.cfg.HTTP
	if first {
		c.setReadDeadline(deadline(hs.ReadHeaderTimeout, hs.ReadTimeout))
		return true
	}
	// The idle deadline follows each response, and only needs to be
	// about right: it is not moved for less than a sixteenth of it.
	timeout := hs.IdleTimeout
	if timeout <= 0 {
		timeout = hs.ReadTimeout
	}
	if d := deadline(hs.IdleTimeout, hs.ReadTimeout); moved(c.readBy, d, timeout) {
		c.setReadDeadline(d)
	}
	return true
}

// setReadDeadline sets the read deadline to t and remembers it.
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	c.readBy = t
}

// moved reports whether a deadline at cur must be set to next, for a
// timeout: always to tighten it or to lift or set one, and to push it
// back only by a sixteenth of the timeout or more, so that most requests
// of a busy connection update no runtime timer, and a timeout still ends
// 15/16 of its length after the request at the least.
func moved(cur, next time.Time, timeout time.Duration) bool {
	if cur.IsZero() || next.IsZero() {
		return !cur.Equal(next)
	}
	d := next.Sub(cur)
	return d < 0 || d >= timeout/16
}

// setBusy marks c as reading or answering a request: Close lets it finish.
func (c *conn) setBusy() {
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
}

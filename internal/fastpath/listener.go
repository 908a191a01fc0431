package fastpath

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errTooManyFiles is accept's error when the process is out of
// descriptors: worth a retry after a pause, as net/http does.
const errTooManyFiles = syscall.EMFILE

// listener accepts the connections of one Serve for the fast path and is,
// to the http.Server, the listener of the connections handed over.
type listener struct {
	s   *Server
	ln  net.Listener
	ctx context.Context // of every fast request; canceled shutdownGrace after Close

	handoff   chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	// closing is set by Close. A connection's idle and busy states are
	// its own (conn.mu), so that requests do not share a lock.
	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*conn]struct{} // guarded by mu

	readers sync.Pool // of *bufio.Reader: the connections' read buffers
}

// reader returns a read buffer over s, from the pool.
func (l *listener) reader(s *sock) *bufio.Reader {
	if br, ok := l.readers.Get().(*bufio.Reader); ok {
		br.Reset(s)
		return br
	}
	return bufio.NewReaderSize(s, readBuffer)
}

// putReader gives br, which holds nothing, back to the pool.
func (l *listener) putReader(br *bufio.Reader) {
	br.Reset(nil) // not keeping its connection
	l.readers.Put(br)
}

// Accept returns the next connection handed over to net/http.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the idle fast connections; the
// http.Server's Shutdown and Close call it.
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
		l.closing.Store(true)
		l.mu.Lock()
		for c := range l.conns {
			c.mu.Lock()
			if c.idle {
				c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes its read
			}
			c.mu.Unlock()
		}
		l.mu.Unlock()
	})
	return err
}

func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// accept runs the fast path's accept loop until the listener closes; wg
// counts the connections' goroutines.
func (l *listener) accept(wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.s.log.Warn("accept", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			l.s.log.Error("accept", "error", err)
			l.Close()
			return
		}
		backoff = 0
		c := &conn{l: l, nc: nc, sock: newSock(nc)}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		if !c.setIdle(true) {
			l.forget(c)
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve()
		}()
	}
}

func (l *listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// handOver gives c, with what it buffered, to net/http.
func (l *listener) handOver(c *conn) {
	l.forget(c)
	l.s.cfg.HandedOver()
	c.nc.SetDeadline(time.Time{}) // net/http sets its own, when it has any
	bc := &bufferedConn{Conn: c.nc, r: c.br}
	select {
	case l.handoff <- bc:
	case <-l.closed:
		c.nc.Close()
	}
}

// bufferedConn is a connection whose first bytes were already read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read reads what r holds, then the connection itself (r reads a sock).
func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection as it does a
// *net.TCPConn's.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

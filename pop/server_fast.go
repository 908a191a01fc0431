package pop

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// shutdownGrace bounds how long, once Serve's listener is closed, a
// request held for upstream may still wait before its context is canceled.
const shutdownGrace = 10 * time.Second

// Serve serves hs (whose Handler serves this PoP, directly or through a
// mux) on ln, with a fast path in front of net/http for what nearly every
// request to a PoP is: a plain HTTP/1.1 GET or HEAD of a media path. Those
// are read, answered by s (ServeHTTP) and written on the connection
// without net/http's per-request machinery (a background reader, header
// sorting, two writes per response), which was half of the CPU of a
// small cached response. The first request on a connection that the fast
// path does not take (see parseFastHead) hands the connection, with the
// bytes already read, to hs for the rest of its life, so net/http answers
// everything else exactly as before. hs's ReadHeaderTimeout, IdleTimeout
// and WriteTimeout apply to the fast path too. Plain TCP only: for TLS use
// hs.ServeTLS.
//
// Like hs.Serve it returns http.ErrServerClosed after hs.Shutdown or
// hs.Close; it returns once the fast path's connections have ended as
// well: idle ones at once, busy ones after their response (a held request
// waits at most shutdownGrace).
func (s *Server) Serve(hs *http.Server, ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fastServer{
		s:       s,
		hs:      hs,
		ln:      ln,
		ctx:     ctx,
		handoff: make(chan net.Conn),
		closed:  make(chan struct{}),
		conns:   map[*fastConn]struct{}{},
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.accept(&wg) }()
	err := hs.Serve(f)
	f.Close()
	timer := time.AfterFunc(shutdownGrace, cancel)
	wg.Wait()
	timer.Stop()
	cancel()
	return err
}

// fastServer accepts connections for the fast path and is, to hs, the
// listener of the connections handed over.
type fastServer struct {
	s   *Server
	hs  *http.Server
	ln  net.Listener
	ctx context.Context // of every fast request; canceled shutdownGrace after Close

	handoff   chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	// closing is set by Close. A connection's idle and busy states are
	// its own (fastConn.mu), so that requests do not share a lock.
	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{} // guarded by mu
}

// Accept returns the next connection handed over to net/http.
func (f *fastServer) Accept() (net.Conn, error) {
	select {
	case c := <-f.handoff:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the idle fast connections; hs.Shutdown
// and hs.Close call it.
func (f *fastServer) Close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.closed)
		err = f.ln.Close()
		f.closing.Store(true)
		f.mu.Lock()
		for c := range f.conns {
			c.mu.Lock()
			if c.idle {
				c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes its read
			}
			c.mu.Unlock()
		}
		f.mu.Unlock()
	})
	return err
}

func (f *fastServer) Addr() net.Addr { return f.ln.Addr() }

// accept runs the fast path's accept loop until the listener closes; wg
// counts the connections' goroutines.
func (f *fastServer) accept(wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			select {
			case <-f.closed:
				return
			default:
			}
			if errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				f.s.log.Warn("accept", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			f.s.log.Error("accept", "error", err)
			f.Close()
			return
		}
		backoff = 0
		c := &fastConn{f: f, nc: nc, br: bufio.NewReaderSize(nc, fastReadBuffer)}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		if !c.setIdle(true) {
			f.forget(c)
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

func (f *fastServer) forget(c *fastConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// handOver gives c, with what it buffered, to net/http.
func (f *fastServer) handOver(c *fastConn) {
	f.forget(c)
	f.s.metrics.handoffs.Inc()
	c.nc.SetDeadline(time.Time{}) // net/http sets its own, when hs has any
	bc := &bufferedConn{Conn: c.nc, r: c.br}
	select {
	case f.handoff <- bc:
	case <-f.closed:
		c.nc.Close()
	}
}

// bufferedConn is a connection whose first bytes were already read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite lets net/http half-close the connection as it does a
// *net.TCPConn's.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

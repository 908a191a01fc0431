package fastpath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchAfter is how long the handler may hold a fast request before the
// connection is watched for the client leaving. Hits take microseconds,
// and a flash crowd's held requests mostly less than this: watching
// each of them costs a goroutine and two wakeups, which measurably slowed
// a 10000-viewer herd held 220 ms when this was 100 ms. What waits longer
// is a request held for a slow or stalled upstream, or a slow reader; a
// client that leaves sooner is noticed at the next write.
const watchAfter = time.Second

// The debug messages of a departure watch: it waits for the client's
// socket, the client left, and it cannot watch (no copy of the socket).
const (
	msgWatching = "request held: watching for its client leaving"
	msgLeft     = "client left while its request was held"
	msgNoWatch  = "request held: cannot watch for its client leaving"
)

// departureWatch ends a fast connection's context when its client leaves
// while a request is held, as net/http's background read does, so that
// the handler's work for nobody (an upstream fetch) stops. It peeks at
// the socket and never consumes: a pipelined request that arrives
// meanwhile stays there for the next read, and the watch just ends. It
// waits under the read deadline in effect (the request head's, or the
// idle one when the head came whole) and stops watching when that passes.
//
// The connection's own descriptor is being read by the request loop,
// which holds its read lock while the handler runs (sock.serve): the
// watch waits on a copy of the descriptor (dup(2)) in the poller, made
// when it starts, so only for requests held watchAfter.
type departureWatch struct {
	c      *conn
	raw    syscall.RawConn    // nil: the connection is not a socket; no watch
	cancel context.CancelFunc // of the connection's context
	timer  *time.Timer        // runs run watchAfter after arm

	armed atomic.Bool // between arm and disarm
	// exited receives once from every run, so that disarm knows the
	// watcher is gone before the connection reads again.
	exited chan struct{}

	mu   sync.Mutex
	copy *os.File // the descriptor run waits on, while it does; guarded by mu
}

func newDepartureWatch(c *conn, cancel context.CancelFunc) *departureWatch {
	w := &departureWatch{c: c, cancel: cancel, exited: make(chan struct{}, 1)}
	if sc, ok := c.nc.(syscall.Conn); ok {
		w.raw, _ = sc.SyscallConn()
	}
	return w
}

// arm starts the clock for a request about to be handled. It does not
// watch when the connection has the next request's bytes already read:
// that client is still there.
func (w *departureWatch) arm() bool {
	if w.raw == nil || w.c.br.Buffered() > 0 {
		return false
	}
	w.armed.Store(true)
	if w.timer == nil {
		w.timer = time.AfterFunc(watchAfter, w.run)
	} else {
		w.timer.Reset(watchAfter)
	}
	return true
}

// disarm ends the watch of the request handled, and returns once the
// watcher, if it started, is gone.
func (w *departureWatch) disarm() {
	w.armed.Store(false)
	if w.timer.Stop() {
		return // never ran
	}
	w.mu.Lock()
	if w.copy != nil {
		w.copy.SetReadDeadline(time.Unix(1, 0)) // wakes a waiting run
	}
	w.mu.Unlock()
	<-w.exited
}

// run waits for the socket to be readable; end of stream or an error there
// means the client left, and the connection's context is canceled.
func (w *departureWatch) run() {
	defer func() { w.exited <- struct{}{} }()
	if !w.armed.Load() {
		return
	}
	f, err := w.dup()
	if err != nil {
		w.c.l.s.log.Debug(msgNoWatch, "remote", w.c.req.RemoteAddr, "error", err)
		return
	}
	defer f.Close()
	w.mu.Lock()
	if !w.armed.Load() { // disarm came first, and did not see the copy
		w.mu.Unlock()
		return
	}
	w.copy = f
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.copy = nil
		w.mu.Unlock()
	}()
	if err := f.SetReadDeadline(w.c.readBy); err != nil { // not in the poller: it would block a thread
		w.c.l.s.log.Debug(msgNoWatch, "remote", w.c.req.RemoteAddr, "error", err)
		return
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	left, waiting := false, false
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		for errors.Is(err, unix.EINTR) {
			n, _, err = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		}
		if errors.Is(err, unix.EAGAIN) {
			if !waiting {
				w.c.l.s.log.Debug(msgWatching, "remote", w.c.req.RemoteAddr, "path", w.c.req.URL.Path)
			}
			waiting = true
			return false // nothing yet: wait for readability
		}
		left = err != nil || n == 0
		return true
	})
	if err == nil && left {
		w.c.l.s.log.Debug(msgLeft, "remote", w.c.req.RemoteAddr, "path", w.c.req.URL.Path)
		w.cancel()
	}
}

// dup returns a copy of the connection's descriptor, in the poller.
func (w *departureWatch) dup() (*os.File, error) {
	nfd, derr := -1, error(nil)
	if err := w.raw.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	// The copy shares the socket's non-blocking mode, so os.NewFile puts
	// it in the poller.
	return os.NewFile(uintptr(nfd), "departure watch"), nil
}

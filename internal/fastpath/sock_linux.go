//go:build linux

package fastpath

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock reads and writes a fast connection's socket with system calls of
// its own (sysRead, sysWritev), through the connection's
// syscall.RawConn, which still waits for readiness and keeps the
// deadlines. Go's own calls tell the scheduler that they may block: on
// the way in and out of each, and whenever one outlasts a sysmon tick
// (20 µs), which a write over loopback does by delivering the bytes
// too, the scheduler hands the processor to another thread, and its
// monitor keeps waking to do so. The socket is non-blocking, so these
// calls never block: under a flash crowd on one core the scheduler's part
// was a tenth of the PoP's CPU (bench/flash, README). A sock is owned by
// its connection's goroutine, and reused.
//
// The fast path reads inside one RawConn.Read for the connection's life
// (serve), so that a read that came back short, which emptied the
// socket, is followed by a wait for the next bytes rather than by a read
// that finds none, as nginx does.
type sock struct {
	nc        net.Conn
	rc        syscall.RawConn       // nil: nc is no socket, and is used as it is
	readStep  func(fd uintptr) bool // bound once: a call allocates nothing
	writeStep func(fd uintptr) bool
	p         []byte // being read into, by a Read outside serve
	n         int
	serving   bool // inside serve, which has the socket as fd
	fd        int
	drained   bool         // the last read inside serve emptied the socket
	reads     int          // reads inside serve, each one system call but for EINTR
	iovs      []unix.Iovec // of the buffers being written, reused
	iov       []unix.Iovec // the part of iovs not yet written
	written   int64
	err       error
}

// newSock returns the sock of nc.
func newSock(nc net.Conn) *sock {
	s := &sock{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		s.rc, _ = sc.SyscallConn()
	}
	s.readStep, s.writeStep = s.read, s.writev
	return s
}

// serve calls step until it reports true, and returns the error that
// ended the wait for the socket (a deadline, a close), or nil once step
// is done. Read returns errWouldBlock when step must wait: step then
// returns false, and is called again when the socket has new bytes.
//
// All of it runs inside one RawConn.Read, which waits for readiness on
// the poller's latch: set by every arrival of bytes after the wait's
// previous wakeup, cleared only where a RawConn.Read begins. So a read
// that came back short, which means it emptied the socket, needs no
// second read to find nothing before the wait: bytes that came after it
// set the latch and the wait returns at once. A Read of its own per
// request would clear the latch as it begins and lose what came since,
// so it must read first; that empty read was a third of the reads of a
// flash crowd (bench/flash). The handler runs inside step, so the read
// lock is held meanwhile: the departure watch reads a copy of the
// descriptor (conn_watch.go).
func (s *sock) serve(step func() bool) error {
	if s.rc == nil {
		step() // Read blocks: step never waits
		return nil
	}
	s.serving = true
	defer func() { s.serving = false }()
	return s.rc.Read(func(fd uintptr) bool {
		s.fd, s.drained = int(fd), false // called at first or woken: read
		return step()
	})
}

// Read reads into p. Inside serve it returns errWouldBlock when the
// socket has nothing yet (serve waits); outside, it waits for the socket
// under its read deadline.
func (s *sock) Read(p []byte) (int, error) {
	if s.rc == nil {
		return s.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !s.serving {
		return s.readWaiting(p)
	}
	if s.drained {
		return 0, errWouldBlock
	}
	n, err := readFD(s.fd, p)
	s.reads++
	switch err {
	case nil:
		s.drained = n < len(p)
	case errWouldBlock:
		s.drained = true
	}
	return n, err
}

// readWaiting is Read outside serve: one RawConn.Read of its own.
func (s *sock) readWaiting(p []byte) (int, error) {
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.readStep)
	s.p = nil
	if err == nil {
		err = s.err
	}
	return s.n, err
}

func (s *sock) read(fd uintptr) bool {
	s.n, s.err = readFD(int(fd), s.p)
	return s.err != errWouldBlock
}

// readFD reads once from fd into p, again when interrupted: n > 0 bytes,
// errWouldBlock when the socket has none yet, io.EOF, or the error.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, errno := sysRead(fd, p)
		switch errno {
		case 0:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		default:
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: errno}
		}
	}
}

// Write writes every byte of p, as writeBuffers.
func (s *sock) Write(p []byte) (int, error) {
	if s.rc == nil {
		return s.nc.Write(p)
	}
	bufs := [1][]byte{p}
	n, err := s.writeBuffers(bufs[:])
	return int(n), err
}

// writeBuffers writes every byte of bufs in order, waiting for the
// socket under its write deadline when it is full, and returns how many
// it wrote.
func (s *sock) writeBuffers(bufs [][]byte) (int64, error) {
	if s.rc == nil {
		// A copy, which WriteTo consumes: bufs stays the caller's, and
		// may stay on its stack (Write).
		nb := append(net.Buffers(nil), bufs...)
		return nb.WriteTo(s.nc)
	}
	s.iovs = s.iovs[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			s.iovs = append(s.iovs, v)
		}
	}
	if len(s.iovs) == 0 {
		return 0, nil
	}
	s.iov, s.written, s.err = s.iovs, 0, nil
	err := s.rc.Write(s.writeStep)
	clear(s.iovs) // no pointers into the buffers kept
	s.iov = nil
	if err == nil {
		err = s.err
	}
	return s.written, err
}

func (s *sock) writev(fd uintptr) bool {
	for len(s.iov) > 0 {
		n, errno := sysWritev(int(fd), s.iov)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.err = &net.OpError{Op: "write", Net: "tcp", Err: errno}
			return true
		}
		s.written += int64(n)
		for n > 0 { // past what was written
			if l := int(s.iov[0].Len); n >= l {
				n -= l
				s.iov = s.iov[1:]
				continue
			}
			s.iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(s.iov[0].Base), n))
			s.iov[0].SetLen(int(s.iov[0].Len) - n)
			n = 0
		}
	}
	return true
}

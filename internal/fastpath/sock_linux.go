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
type sock struct {
	nc        net.Conn
	rc        syscall.RawConn       // nil: nc is no socket, and is used as it is
	readStep  func(fd uintptr) bool // bound once: a call allocates nothing
	writeStep func(fd uintptr) bool
	p         []byte       // being read into
	iovs      []unix.Iovec // of the buffers being written, reused
	iov       []unix.Iovec // the part of iovs not yet written
	n         int
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

// Read reads into p, waiting for the socket under its read deadline.
func (s *sock) Read(p []byte) (int, error) {
	if s.rc == nil {
		return s.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.readStep)
	s.p = nil
	if err == nil {
		err = s.err
	}
	if err == nil && s.n == 0 {
		err = io.EOF
	}
	return s.n, err
}

func (s *sock) read(fd uintptr) bool {
	for {
		n, errno := sysRead(int(fd), s.p)
		switch errno {
		case 0:
			s.n = n
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.err = &net.OpError{Op: "read", Net: "tcp", Err: errno}
		}
		return true
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

//go:build linux

package fastpath

import (
	"errors"
	"net/http"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileSend is the writer's state for bodies sent from files: the
// connection's syscall.RawConn, set up on its first such response, and
// the response being sent, which step sends. It is reused, so that a
// response sent from a file allocates nothing.
type fileSend struct {
	rc   syscall.RawConn
	step func(fd uintptr) bool // send, bound once

	head []byte
	fd   int   // of the file
	size int64 // of the body
	off  int64 // body bytes sent
	err  error
}

// SendFile implements FileSender: the head with MSG_MORE, so that it
// leaves with the body's first bytes, then sendfile(2).
func (w *writer) SendFile(fd int, size int64) (int64, bool) {
	if w.err != nil || w.sent || w.isHead {
		return 0, false
	}
	w.WriteHeader(http.StatusOK)
	if !w.bodyAllowed() || w.declared() != size {
		return 0, false
	}
	fs := &w.fs
	if fs.rc == nil {
		if w.sock.rc == nil {
			return 0, false
		}
		fs.rc, fs.step = w.sock.rc, fs.send
	}
	w.buildHead()
	fs.head, fs.fd, fs.size, fs.off, fs.err = w.head, fd, size, 0, nil
	err := fs.rc.Write(fs.step)
	if err == nil {
		err = fs.err
	}
	w.sent = true
	w.written += fs.off
	if err != nil {
		w.err, w.close = err, true
	}
	return fs.off, true
}

var errShortWrite = errors.New("short write")

// send sends what it can on fd, the connection's socket, with the system
// calls of a sock; false means fd must become writable first.
func (s *fileSend) send(fd uintptr) bool {
	for len(s.head) > 0 {
		n, errno := sysSendMore(int(fd), s.head)
		switch errno {
		case 0:
			s.head = s.head[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.err = errno
			return true
		}
	}
	for s.off < s.size {
		n, errno := sysSendfile(int(fd), s.fd, &s.off, int(s.size-s.off))
		switch {
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			return false
		case errno != 0:
			s.err = errno
			return true
		case n == 0:
			s.err = errShortWrite
			return true
		}
	}
	return true
}

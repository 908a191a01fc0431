//go:build linux

package loadtest

import (
	"io"
	"syscall"
	"unsafe"
)

// canDiscardRaw says that discardRaw works on this system: Linux's
// recv(2) takes MSG_TRUNC on TCP sockets (tcp(7)) and drops the bytes
// without copying them to user space.
const canDiscardRaw = true

// discardRaw drops the next n bytes of l's TCP connection in the kernel,
// or up to its end when n < 0. It returns how many it dropped. Waiting
// follows the connection's deadline, as a read does.
func (l *lane) discardRaw(n int64) (int64, error) {
	l.want, l.got, l.untilEOF, l.rawErr = n, 0, n < 0, nil
	if n < 0 {
		l.want = 1 << 62
	}
	err := l.raw.Read(l.truncFn)
	if err == nil {
		err = l.rawErr
	}
	return l.got, err
}

// rawTrunc is discardRaw's callback: it drops what has arrived and asks
// to wait (false) while more is due.
func (l *lane) rawTrunc(fd uintptr) bool {
	for l.want > 0 {
		size := min(l.want, int64(len(l.sh.scratch)))
		// The buffer is named for form's sake: with MSG_TRUNC on TCP the
		// kernel writes nothing to it.
		m, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&l.sh.scratch[0])), uintptr(size), syscall.MSG_TRUNC, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			l.rawErr = e
			return true
		case m == 0:
			if !l.untilEOF {
				l.rawErr = io.ErrUnexpectedEOF
			}
			return true
		}
		l.want -= int64(m)
		l.got += int64(m)
	}
	return true
}

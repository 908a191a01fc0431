//go:build linux && race

package fastpath

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// raceDetector tells whether this build has the race detector, whose
// system calls allocate: tests of allocations run without it (test.sh).
const raceDetector = true

// sysRead is read(2) through package syscall, whose calls tell the race
// detector what they read and what happened before (its writes in other
// goroutines, as a test's client's): the raw calls of the build without
// the detector would not.
func sysRead(fd int, p []byte) (int, unix.Errno) {
	n, err := syscall.Read(fd, p)
	return max(n, 0), errnoOf(err)
}

// sysWritev is writev(2); one buffer is written with syscall.Write, for
// the race detector as sysRead.
func sysWritev(fd int, iov []unix.Iovec) (int, unix.Errno) {
	if len(iov) == 1 {
		n, err := syscall.Write(fd, unsafe.Slice(iov[0].Base, iov[0].Len))
		return max(n, 0), errnoOf(err)
	}
	n, _, errno := syscall.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), errno
}

func errnoOf(err error) unix.Errno {
	var errno syscall.Errno
	if err != nil && errors.As(err, &errno) {
		return errno
	}
	return 0
}

// sysSendMore is send(2) with MSG_MORE.
func sysSendMore(fd int, p []byte) (int, unix.Errno) {
	n, err := unix.SendmsgN(fd, p, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
	return max(n, 0), errnoOf(err)
}

// sysSendfile is sendfile(2).
func sysSendfile(out, in int, off *int64, count int) (int, unix.Errno) {
	n, err := unix.Sendfile(out, in, off, count)
	return max(n, 0), errnoOf(err)
}

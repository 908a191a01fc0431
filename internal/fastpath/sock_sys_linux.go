//go:build linux && !race

package fastpath

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// raceDetector tells whether this build has the race detector, whose
// system calls allocate: tests of allocations run without it (test.sh).
const raceDetector = false

// sysRead is read(2) on a non-blocking socket, as a system call that
// does not tell the scheduler it may block (sock).
func sysRead(fd int, p []byte) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// sysWritev is writev(2) on a non-blocking socket, as sysRead.
func sysWritev(fd int, iov []unix.Iovec) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), errno
}

// sysSendMore is send(2) with MSG_MORE, as sysRead: what follows will
// join p in its packets.
func sysSendMore(fd int, p []byte) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_MORE|unix.MSG_NOSIGNAL, 0, 0)
	return int(n), errno
}

// sysSendfile is sendfile(2) to a non-blocking socket, as sysRead: it
// sends from the file's offset *off, and moves *off past what it sent.
func sysSendfile(out, in int, off *int64, count int) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDFILE, uintptr(out), uintptr(in), uintptr(unsafe.Pointer(off)), uintptr(count), 0, 0)
	return int(n), errno
}

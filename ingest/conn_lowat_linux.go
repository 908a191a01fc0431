package ingest

import (
	"net"
	"syscall"
)

// setRcvLowat asks the kernel not to wake the reader of c before n bytes
// are queued (SO_RCVLOWAT; epoll honours it for TCP): a publisher's frames
// then cost one wakeup and one read per burst, not per TCP segment.
func setRcvLowat(c net.Conn, n int) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // RTMPS: its socket
		c = tc.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, max(n, 1))
	})
}

package fastpath

import (
	"context"
	"net"
)

// DialContext returns d's DialContext, whose connections are read and
// written as the fast path's are (sock): with system calls that do not
// tell the Go scheduler they may block. An http.Transport of the PoP's
// upstream fetches dials with it: each of Go's own calls there woke the
// runtime's monitor thread out of its sleep, which then polled every
// 20 µs for a millisecond, a few points of a busy PoP's CPU (bench/flash).
// Deadlines, Close and the other methods are the dialed connection's.
func DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &dialedConn{Conn: nc, r: newSock(nc), w: newSock(nc)}, nil
	}
}

// dialedConn is a connection of DialContext. Its reads and its writes
// each have a sock of their own, as a client reads and writes from two
// goroutines at once.
type dialedConn struct {
	net.Conn
	r, w *sock
}

func (c *dialedConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *dialedConn) Write(p []byte) (int, error) { return c.w.Write(p) }

//go:build !linux

package fastpath

import "net"

// sock is, on Linux, a connection's socket read and written with system
// calls of its own; here it is the connection.
type sock struct{ nc net.Conn }

func newSock(nc net.Conn) *sock { return &sock{nc: nc} }

// serve calls step, whose reads block: it never waits (errWouldBlock).
func (s *sock) serve(step func() bool) error {
	step()
	return nil
}

func (s *sock) Read(p []byte) (int, error) { return s.nc.Read(p) }

// writeBuffers writes every byte of bufs in order.
func (s *sock) writeBuffers(bufs [][]byte) (int64, error) {
	nb := net.Buffers(bufs)
	return nb.WriteTo(s.nc)
}

func (s *sock) Write(p []byte) (int, error) { return s.nc.Write(p) }

//go:build linux

package loadtest

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a TCP connection on 127.0.0.1, closed when
// the test ends.
func tcpPair(tb testing.TB) (client, server *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, aerr := ln.Accept()
		if aerr != nil {
			tb.Error(aerr)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		tb.FailNow()
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestDiscardRaw drops exact counts in the kernel: what follows is read
// intact, a peer closing early is io.ErrUnexpectedEOF, n < 0 runs to the
// end, and the deadline bounds the wait.
func TestDiscardRaw(t *testing.T) {
	c, s := tcpPair(t)
	l := newLane(t.Context(), &laneShared{scratch: make([]byte, 1000)}, "")
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	l.nc, l.raw = c, raw
	msg := make([]byte, 5000)
	copy(msg[4990:], "0123456789")
	go s.Write(msg)
	if n, err := l.discardRaw(4990); n != 4990 || err != nil {
		t.Fatalf("discardRaw(4990) = %d, %v", n, err)
	}
	rest := make([]byte, 10)
	if _, err := io.ReadFull(c, rest); err != nil || string(rest) != "0123456789" {
		t.Fatalf("after the dropped bytes: %q, %v", rest, err)
	}

	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := l.discardRaw(10); !os.IsTimeout(err) {
		t.Fatalf("discardRaw past the deadline: %v", err)
	}
	c.SetDeadline(time.Time{})

	s.Write(make([]byte, 300))
	s.CloseWrite()
	if n, err := l.discardRaw(-1); n != 300 || err != nil {
		t.Fatalf("discardRaw(-1) = %d, %v; want 300 to the end", n, err)
	}
	if n, err := l.discardRaw(10); n != 0 || err != io.ErrUnexpectedEOF {
		t.Fatalf("discardRaw at the end = %d, %v", n, err)
	}
}

// BenchmarkDiscard compares ways to drop a 150 KB body arriving on a TCP
// connection on 127.0.0.1: read(2) into a 64 KiB buffer (the portable
// way), splice(2) into a pipe and from it to /dev/null, and recv(2) with
// MSG_TRUNC (discardRaw). The sender runs in this process too; its share
// is the same for each.
//
//	go test -run X -bench Discard ./loadtest
func BenchmarkDiscard(b *testing.B) {
	const size = benchVideoBytes
	b.Run("read", func(b *testing.B) {
		benchDiscard(b, size, func(c *net.TCPConn) func(int64) error {
			buf := make([]byte, discardBufSize)
			return func(n int64) error {
				_, err := io.CopyBuffer(io.Discard, io.LimitReader(onlyReader{c}, n), buf)
				return err
			}
		})
	})
	b.Run("splice", func(b *testing.B) {
		benchDiscard(b, size, func(c *net.TCPConn) func(int64) error {
			var p [2]int
			if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
				b.Fatal(err)
			}
			null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { syscall.Close(p[0]); syscall.Close(p[1]); null.Close() })
			raw, err := c.SyscallConn()
			if err != nil {
				b.Fatal(err)
			}
			return func(n int64) error {
				for n > 0 {
					var m int64
					var serr error
					err := raw.Read(func(fd uintptr) bool {
						m, serr = syscall.Splice(int(fd), nil, p[1], nil, int(n), 1|2) // SPLICE_F_MOVE|SPLICE_F_NONBLOCK
						return serr != syscall.EAGAIN
					})
					if err == nil {
						err = serr
					}
					if err != nil {
						return err
					}
					for left := m; left > 0; {
						k, err := syscall.Splice(p[0], nil, int(null.Fd()), nil, int(left), 1)
						if err != nil {
							return err
						}
						left -= k
					}
					n -= m
				}
				return nil
			}
		})
	})
	b.Run("trunc", func(b *testing.B) {
		benchDiscard(b, size, func(c *net.TCPConn) func(int64) error {
			l := newLane(b.Context(), &laneShared{scratch: make([]byte, discardScratchSize)}, "")
			raw, err := c.SyscallConn()
			if err != nil {
				b.Fatal(err)
			}
			l.nc, l.raw = c, raw
			return func(n int64) error {
				_, err := l.discardRaw(n)
				return err
			}
		})
	})
}

// onlyReader hides a conn's WriteTo, so that io.CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// benchDiscard sends size bytes per iteration and drops them with the
// function newDrop makes, reporting the process's CPU time per body.
func benchDiscard(b *testing.B, size int, newDrop func(*net.TCPConn) func(int64) error) {
	c, s := tcpPair(b)
	drop := newDrop(c)
	body := make([]byte, size)
	sent := make(chan error, 1)
	b.ResetTimer()
	cpu0 := cpuTime()
	go func() {
		for range b.N {
			if _, err := s.Write(body); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for range b.N {
		if err := drop(int64(size)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/body")
}

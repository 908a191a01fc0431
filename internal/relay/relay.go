// Package relay is a TCP relay for tests: it passes connections on to a
// target and can freeze what the clients send while keeping every
// connection open, as an encoder's uplink freezes.
package relay

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Relay accepts on a loopback port and relays each connection to its
// target until the test ends.
type Relay struct {
	ln     net.Listener
	target string
	frozen chan struct{} // closed by Freeze
	freeze sync.Once

	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	closed bool       // guarded by mu
	wg     sync.WaitGroup
}

// Start starts a relay to target (host:port); it is closed when the test
// ends.
func Start(t testing.TB, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln, target: target, frozen: make(chan struct{})}
	r.wg.Go(r.accept)
	t.Cleanup(r.Close)
	return r
}

// Addr is where clients connect.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Freeze stops relaying what clients send, from their next bytes on; the
// connections stay open and the target's bytes still reach the clients.
func (r *Relay) Freeze() { r.freeze.Do(func() { close(r.frozen) }) }

// Close ends every connection and waits for the relay's goroutines.
func (r *Relay) Close() {
	r.Freeze()
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Go(func() { // target -> client, until either side closes
			io.Copy(c, s)
			c.Close()
		})
		r.wg.Go(func() { // client -> target, until frozen
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				select {
				case <-r.frozen:
					return // silent from now on; Close ends the connections
				default:
				}
				if n > 0 {
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					s.Close()
					return
				}
			}
		})
	}
}

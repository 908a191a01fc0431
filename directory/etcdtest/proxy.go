package etcdtest

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from a 127.0.0.1 port of its own to a
// member, and can cut them: a network partition between the clients
// that dial it and etcd. Its methods are safe for concurrent use.
type Proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and the copies

	mu    sync.Mutex // protects the fields below
	cut   bool
	conns map[net.Conn]struct{}
}

// NewProxy starts a proxy to the client URL of member i, and stops it
// when the test ends.
func (c *Cluster) NewProxy(i int) *Proxy {
	c.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatalf("etcdtest: proxy: %v", err)
	}
	p := &Proxy{l: l, target: c.members[i].clientURL.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	c.t.Cleanup(p.close)
	return p
}

// URL is the proxy's URL, an endpoint for clients.
func (p *Proxy) URL() string { return "http://" + p.l.Addr().String() }

// Cut closes the connections through the proxy and refuses new ones
// until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) close() {
	p.l.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies from src to dst until either fails, then closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

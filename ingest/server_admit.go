package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// errFull refuses a new connection: every place it could take is held by
// a publisher.
var errFull = errors.New("too many connections")

// pendingConns holds the connections that have not published yet, by
// address (addrKey). Not safe for concurrent use: Server.mu guards it.
type pendingConns struct {
	byAddr map[string][]*conn
	n      int
}

func (p *pendingConns) add(c *conn) {
	if p.byAddr == nil {
		p.byAddr = make(map[string][]*conn)
	}
	p.byAddr[c.addr] = append(p.byAddr[c.addr], c)
	c.pending = true
	p.n++
}

// remove forgets c; it reports whether c was pending.
func (p *pendingConns) remove(c *conn) bool {
	if !c.pending {
		return false
	}
	c.pending = false
	p.n--
	cs := slices.DeleteFunc(p.byAddr[c.addr], func(o *conn) bool { return o == c })
	if len(cs) == 0 {
		delete(p.byAddr, c.addr)
	} else {
		p.byAddr[c.addr] = cs
	}
	return true
}

// quietest returns the connection, from addr unless addr is empty, that
// has sent nothing for the longest time, or nil if there is none.
func (p *pendingConns) quietest(addr string) *conn {
	var q *conn
	pick := func(cs []*conn) {
		for _, c := range cs {
			if q == nil || c.lastRead.Load() < q.lastRead.Load() {
				q = c
			}
		}
	}
	if addr != "" {
		pick(p.byAddr[addr])
		return q
	}
	for _, cs := range p.byAddr {
		pick(cs)
	}
	return q
}

// admitLocked makes room for the new connection c and registers it, or
// says why c is refused. Connections that publish count only against
// MaxConns, so that idle or unauthenticated ones cannot take the places
// of publishers: those not publishing yet are bounded by MaxPending, and
// by MaxPendingPerAddr from any one address. When a bound is reached, the
// connection not publishing yet that has been silent the longest (from
// the same address, for MaxPendingPerAddr) is closed to make room: a
// publisher in the middle of its handshake is silent for a round trip at a
// time, waiting for the server's answer, while a connection opened to
// hold a place is silent from the start. c is refused only when all
// MaxConns places are publishers'. s.mu must be held.
func (s *Server) admitLocked(c *conn) error {
	if limit := s.cfg.MaxPendingPerAddr; limit > 0 && !c.local && len(s.pending.byAddr[c.addr]) >= limit {
		s.evictLocked(s.pending.quietest(c.addr))
	}
	if s.pending.n >= s.cfg.MaxPending {
		s.evictLocked(s.pending.quietest(""))
	}
	if len(s.conns) >= s.cfg.MaxConns {
		q := s.pending.quietest("")
		if q == nil {
			return fmt.Errorf("%w: MaxConns %d reached, all publishing", errFull, s.cfg.MaxConns)
		}
		s.evictLocked(q)
	}
	s.conns[c] = struct{}{}
	s.pending.add(c)
	s.metrics.connections.Inc()
	s.metrics.pending.Inc()
	return nil
}

// evictLocked closes c, which has not published yet, to make room for a
// new connection. s.mu must be held.
func (s *Server) evictLocked(c *conn) {
	c.evicted.Store(true)
	s.forgetLocked(c)
	c.nc.Close() // its read fails and its goroutine ends
}

// publishedLocked moves c from the connections not publishing yet to the
// publishers: it no longer counts against MaxPending or MaxPendingPerAddr
// and is never evicted. s.mu must be held.
func (s *Server) publishedLocked(c *conn) {
	if s.pending.remove(c) {
		s.metrics.pending.Dec()
	}
}

// forgetLocked stops counting c as open. s.mu must be held.
func (s *Server) forgetLocked(c *conn) {
	s.publishedLocked(c)
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.metrics.connections.Dec()
	}
}

// addrKey is the address a client's connections are counted under by
// MaxPendingPerAddr: its IP, or for IPv6 its /64, which one host or site
// typically holds whole. local reports a loopback address: this host's
// clients (a proxy or TLS terminator, a load generator) are not bounded
// per address.
func addrKey(a net.Addr) (key string, local bool) {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if p, err := netip.ParseAddrPort(a.String()); err == nil {
		ap = p
	} else {
		return a.String(), false
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String(), ip.IsLoopback()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String(), false
	}
	return p.String(), ip.IsLoopback()
}

package gslb

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr returns the address r's client is placed by: the
// connection's peer, or, when the peer is a trusted proxy, the right-most
// X-Forwarded-For address that is not a trusted proxy. Addresses left of
// it were written by the client or by proxies we do not know, and could
// be anything. An entry that does not parse ends the walk at the last
// trusted hop. The zero Addr means unknown: the map's default entry.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	return clientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies)
}

func clientAddr(remote string, xff []string, trusted []netip.Prefix) netip.Addr {
	addr := parseHost(remote)
	if len(trusted) == 0 || !containsAddr(trusted, addr) {
		return addr
	}
	// Several header lines are one list, in order (RFC 9110 5.3).
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			hop := parseHost(strings.TrimSpace(entries[j]))
			if !hop.IsValid() {
				return addr
			}
			addr = hop
			if !containsAddr(trusted, hop) {
				return addr
			}
		}
	}
	return addr
}

// parseHost parses an address with or without a port ("192.0.2.1",
// "192.0.2.1:80", "[2001:db8::1]:80", "2001:db8::1"), IPv4-mapped IPv6 as
// IPv4, without zone; the zero Addr when it does not parse.
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// containsAddr reports whether one of nets holds addr.
func containsAddr(nets []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

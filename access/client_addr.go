package access

import (
	"net/http"
	"net/netip"
	"strings"
)

// RequestAddr returns the address of r's client: ClientAddr of its
// connection's peer and its X-Forwarded-For header lines.
func RequestAddr(r *http.Request, trusted *Networks) netip.Addr {
	return ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted)
}

// ClientAddr returns the address of a request's client: the connection's
// peer remote ("host:port"), or, when the peer is one of the trusted
// proxies, the right-most X-Forwarded-For address that is not. Addresses
// left of it were written by the client, or by proxies we do not know,
// and could be anything. xff holds the header's lines in order: several
// lines are one list (RFC 9110 5.3). An entry that does not parse ends
// the walk at the last trusted hop. Addresses are returned IPv4-mapped
// IPv6 as IPv4, without zone; the zero Addr when remote does not parse.
// ClientAddr does not allocate unless an address in it is malformed.
//
// It walks the header as gslb's clientAddr does (a copy, so that gslb
// can move to this one).
func ClientAddr(remote string, xff []string, trusted *Networks) netip.Addr {
	addr := parseHost(remote)
	if !trusted.Contains(addr) {
		return addr
	}
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for {
			j := strings.LastIndexByte(rest, ',')
			hop := parseHost(strings.TrimSpace(rest[j+1:]))
			if !hop.IsValid() {
				return addr
			}
			addr = hop
			if !trusted.Contains(hop) {
				return addr
			}
			if j < 0 {
				break
			}
			rest = rest[:j]
		}
	}
	return addr
}

// parseHost parses an address with or without a port ("192.0.2.1",
// "192.0.2.1:80", "[2001:db8::1]:80", "[2001:db8::1]", "2001:db8::1"),
// IPv4-mapped IPv6 as IPv4, without zone; the zero Addr when it does
// not parse.
func parseHost(s string) netip.Addr {
	host := s
	switch i := strings.LastIndexByte(s, ':'); {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 || (end+1 < len(s) && !isPort(s[end+1:])) {
			return netip.Addr{}
		}
		host = s[1:end]
	case i >= 0 && strings.IndexByte(s, ':') == i: // IPv4 and a port
		if !isPort(s[i:]) {
			return netip.Addr{}
		}
		host = s[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// isPort reports whether s is ":" and a port number, 0 to 65535.
func isPort(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != ':' {
		return false
	}
	n := 0
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

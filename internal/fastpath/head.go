package fastpath

import "bytes"

// head is a request head the fast path answers itself: GET or HEAD,
// HTTP/1.1, an origin-form target of plain characters under the
// server's Prefix, one Host, no body, nothing that changes the
// connection. Its byte slices point into the connection's read buffer and
// are valid until the next read.
type head struct {
	isHead bool   // HEAD, not GET
	target []byte // the request target: path, and '?' and query if any
	path   []byte // [A-Za-z0-9-._~/]+, starting with a prefix
	query  []byte // after '?', without it; visible ASCII but '#'
	host   []byte // the Host header's value (validHost)
	close  bool   // Connection: close
	// header holds the value of each of the parser's names, by index;
	// nil for a header the request does not have.
	header [][]byte
}

// parser reads request heads for the fast path, keeping of their headers
// only those the handler reads.
type parser struct {
	prefixes []string // of the paths taken (Config.Prefixes)
	names    []string // the headers kept, canonical (Config.Headers)
}

// headEnd returns the length of the request head at the start of b, up to
// and including the empty line that ends it, or -1 if b holds no complete
// head yet. Lines may end in LF alone; parse refuses those.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i
		}
	}
}

// newHead returns a head with room for p's headers.
func (p *parser) newHead() head { return head{header: make([][]byte, len(p.names))} }

// parse parses a complete request head (as delimited by headEnd) into h,
// made by newHead, and reports whether the fast path may answer it.
// Anything it does not accept goes to net/http, which answers or refuses
// it as usual, so this parser only needs to be right about what it
// accepts (RFC 9112 sections 3 and 5, as net/http reads them).
func (p *parser) parse(b []byte, h *head) bool {
	kept := h.header
	clear(kept)
	*h = head{header: kept}
	line, rest, ok := cutLine(b)
	if !ok {
		return false
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, h.isHead = line[5:], true
	default:
		return false
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || !p.splitTarget(target, h) {
		return false
	}
	hosts := 0
	for {
		if line, rest, ok = cutLine(rest); !ok {
			return false
		}
		if len(line) == 0 {
			return hosts == 1 && len(rest) == 0
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if value == nil {
			value = line[:0] // present, and empty
		}
		for _, c := range name {
			if !isTokenChar(c) {
				return false
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
		switch {
		case equalFold(name, "Host"):
			if !validHost(value) {
				return false // net/http answers 400
			}
			h.host = value
			hosts++
		case equalFold(name, "Connection"):
			switch {
			case equalFold(value, "close"):
				h.close = true
			case !equalFold(value, "keep-alive"):
				return false // upgrades and hop-by-hop lists go to net/http
			}
		case isFraming(name):
			return false // a body or a protocol change: net/http's
		default:
			for i, n := range p.names {
				if equalFold(name, n) {
					if kept[i] != nil {
						return false // repeated: let net/http combine them
					}
					kept[i] = value
				}
			}
		}
	}
}

// isFraming reports whether name is a header announcing a request body or
// a change of protocol, which the fast path leaves to net/http.
func isFraming(name []byte) bool {
	return equalFold(name, "Content-Length") || equalFold(name, "Transfer-Encoding") ||
		equalFold(name, "Expect") || equalFold(name, "Upgrade")
}

// cutLine splits b after its first CRLF. A line ending in a bare LF, or
// with a CR inside, is refused.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// splitTarget splits an origin-form target into h's path and query, and
// reports whether both are plain enough for the fast path: a path under
// one of p.prefixes (any path without) of unreserved characters and slashes, so that it needs no
// unescaping, and a query of visible ASCII. Whether the path names
// anything is the handler's to say. No length is checked: a head that
// does not fit the read buffer (readBuffer) goes to net/http.
func (p *parser) splitTarget(t []byte, h *head) bool {
	path, query, _ := bytes.Cut(t, []byte("?"))
	if len(path) == 0 || path[0] != '/' || !p.taken(path) {
		return false
	}
	for _, c := range path {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	for _, c := range query {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	h.target, h.path, h.query = t, path, query
	return true
}

// validHost reports whether a Host value has only the characters net/http
// takes in one (golang.org/x/net/http/httpguts.ValidHostHeader): letters,
// digits and !$%&'()*+,-.:;=[]_~.
func validHost(v []byte) bool {
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			bytes.IndexByte([]byte("!$%&'()*+,-.:;=[]_~"), c) >= 0) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in a header name (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// taken reports whether path starts with one of p's prefixes, or p has
// none.
func (p *parser) taken(path []byte) bool {
	for _, pre := range p.prefixes {
		if bytes.HasPrefix(path, []byte(pre)) { // no allocation: the conversion does not escape
			return true
		}
	}
	return len(p.prefixes) == 0
}

package loadtest

import (
	"net/url"
	"strings"
)

// appendTarget appends the request target (RFC 9112 3.2.1) of ref
// resolved against base, when that needs no parsing: ref is empty, or an
// absolute or relative path (and query) without dot segments, in
// characters that need no escaping, as segment URIs are. ok is false
// otherwise: url.URL.Parse must resolve it.
func appendTarget(dst []byte, base *url.URL, ref string) ([]byte, bool) {
	switch {
	case ref == "":
		return appendRequestURI(dst, base), true
	case base.Opaque != "" || !plainRef(ref):
		return dst, false
	case ref[0] == '/':
		return append(dst, ref...), true
	}
	p := base.EscapedPath()
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dst = append(dst, p[:i+1]...)
	} else {
		dst = append(dst, '/')
	}
	return append(dst, ref...), true
}

// plainRef reports whether ref is a path (and query) that resolves by
// concatenation (RFC 3986 5.2): no scheme, authority or fragment, no
// dot segments, no character url.URL would escape.
func plainRef(ref string) bool {
	if ref[0] == '?' || strings.HasPrefix(ref, "//") {
		return false
	}
	inPath, seg := true, 0 // seg: where the current path segment starts
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '%':
			if i+2 >= len(ref) || !isHex(ref[i+1]) || !isHex(ref[i+2]) {
				return false
			}
		case c == '/' || c == '?':
			if inPath && isDots(ref[seg:i]) {
				return false
			}
			seg = i + 1
			inPath = inPath && c == '/'
		case strings.IndexByte("-._~!$&'()*+,;=@", c) >= 0:
		default:
			return false
		}
	}
	return !inPath || !isDots(ref[seg:])
}

func isDots(seg string) bool { return seg == "." || seg == ".." }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendRequestURI appends u's path and query, as net/http sends them.
func appendRequestURI(dst []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(dst, u.RequestURI()...)
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	dst = append(dst, p...)
	if u.ForceQuery || u.RawQuery != "" {
		dst = append(dst, '?')
		dst = append(dst, u.RawQuery...)
	}
	return dst
}

package fastpath

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// testHeaders are the headers the tests' handlers read: a PoP's.
var testHeaders = []string{
	"User-Agent", "Range", "If-Range", "If-None-Match", "If-Match",
	"If-Modified-Since", "If-Unmodified-Since", "X-Pop-Hop",
}

// testParser takes paths under /live/ and keeps testHeaders.
var testParser = parser{prefixes: []string{"/live/"}, names: testHeaders}

func TestParseHead(t *testing.T) {
	const ok = "GET /live/s/e/v0/7.m4s HTTP/1.1\r\nHost: pop\r\nUser-Agent: hls.js\r\n\r\n"
	for _, c := range []struct {
		name, head string
		fast       bool
	}{
		{"segment", ok, true},
		{"head, query, close", "HEAD /live/s/index.m3u8?_HLS_msn=3&t=a%2Fb HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n", true},
		{"range and hop", "GET /live/s/e/v0/7.m4s HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nX-Pop-Hop: http://a\r\n\r\n", true},
		{"other headers ignored", "GET /live/s/manifest.mpd HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nCookie: a=b\r\n\r\n", true},
		{"POST", strings.Replace(ok, "GET", "POST", 1), false},
		{"HTTP/1.0", strings.Replace(ok, "HTTP/1.1", "HTTP/1.0", 1), false},
		{"not media: the handler answers", strings.Replace(ok, "7.m4s", "7.txt", 1), true},
		{"outside the prefix", strings.Replace(ok, "/live/", "/api/", 1), false},
		{"escaped path", strings.Replace(ok, "v0", "v%30", 1), false},
		{"absolute form", strings.Replace(ok, "/live/", "http://pop/live/", 1), false},
		{"fragment", strings.Replace(ok, "7.m4s", "7.m4s?a#b", 1), false},
		{"no host", "GET /live/s/e/v0/7.m4s HTTP/1.1\r\n\r\n", false},
		{"two hosts", "GET /live/s/e/v0/7.m4s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"body", strings.Replace(ok, "\r\n\r\n", "\r\nContent-Length: 3\r\n\r\n", 1), false},
		{"chunked", strings.Replace(ok, "\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n", 1), false},
		{"expect", strings.Replace(ok, "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1), false},
		{"upgrade", strings.Replace(ok, "\r\n\r\n", "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1), false},
		{"bare LF", strings.ReplaceAll(ok, "\r\n", "\n"), false},
		{"folded header", strings.Replace(ok, "\r\n\r\n", "\r\nX-A: b\r\n c\r\n\r\n", 1), false},
		{"space before colon", strings.Replace(ok, "Host:", "Host :", 1), false},
		{"repeated range", strings.Replace(ok, "\r\n\r\n", "\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n", 1), false},
		{"repeated header not kept", strings.Replace(ok, "\r\n\r\n", "\r\nAccept: a\r\nAccept: b\r\n\r\n", 1), true},
		{"control byte", strings.Replace(ok, "hls.js", "hls\x01js", 1), false},
		{"trailing bytes", ok + "GET", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := []byte(c.head)
			if n := headEnd(b); n >= 0 && c.name != "trailing bytes" { // parse is given exactly one head
				b = b[:n]
			}
			h := testParser.newHead()
			if got := testParser.parse(b, &h); got != c.fast {
				t.Fatalf("parse = %v, want %v", got, c.fast)
			}
		})
	}
}

// TestParseHeadReuse: a head parsed into keeps nothing of the one before.
func TestParseHeadReuse(t *testing.T) {
	h := testParser.newHead()
	if !testParser.parse([]byte("GET /live/a HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\nX-Pop-Hop: p\r\nConnection: close\r\n\r\n"), &h) {
		t.Fatal("first head refused")
	}
	if !testParser.parse([]byte("HEAD /live/b?q HTTP/1.1\r\nHost: y\r\nUser-Agent: u\r\n\r\n"), &h) {
		t.Fatal("second head refused")
	}
	if !h.isHead || string(h.path) != "/live/b" || string(h.query) != "q" || string(h.host) != "y" || h.close {
		t.Errorf("second head: %+v", h)
	}
	for i, v := range h.header {
		if want := testHeaders[i] == "User-Agent"; (v != nil) != want {
			t.Errorf("%s = %q in the second head", testHeaders[i], v)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 27},
		{"GET / HTTP/1.1\nHost: a\n\nrest", 24},
		{"GET / HTTP/1.1\r\nHost: a\r\n", -1},
		{"", -1},
	} {
		if got := headEnd([]byte(c.in)); got != c.want {
			t.Errorf("headEnd(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// FuzzParseHead checks the fast path's parser against net/http's: what
// the fast path accepts, with a prefix or without, net/http reads as the
// same request, ending where the fast path says it ends.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /live/s/e/v0/7.m4s HTTP/1.1\r\nHost: pop\r\nUser-Agent: hls.js\r\n\r\n",
		"HEAD /live/s/index.m3u8?_HLS_msn=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: bytes=1-2\r\n\r\n",
		"GET /live/s/e/v0/init.mp4 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e\"\r\nX-Pop-Hop: p\r\n\r\nGET /",
		"GET /live/a.m4s HTTP/1.1\nHost: x\n\n",
		"POST /live/a.m4s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
		"GET //x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET x HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	parsers := []parser{testParser, {names: testHeaders}}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n < 0 {
			return
		}
		for _, p := range parsers {
			h := p.newHead()
			if !p.parse(b[:n], &h) {
				continue
			}
			br := bufio.NewReaderSize(bytes.NewReader(b), len(b)+16)
			r, err := http.ReadRequest(br)
			if err != nil {
				t.Fatalf("prefixes %q: fast path accepts %q, net/http refuses it: %v", p.prefixes, b[:n], err)
			}
			method := http.MethodGet
			if h.isHead {
				method = http.MethodHead
			}
			switch {
			case r.Method != method:
				t.Fatalf("method %q, net/http %q", method, r.Method)
			case r.URL.Path != string(h.path) || r.URL.RawQuery != string(h.query) || r.URL.EscapedPath() != string(h.path):
				t.Fatalf("path %q query %q, net/http %q %q", h.path, h.query, r.URL.Path, r.URL.RawQuery)
			case r.Host != string(h.host) || r.RequestURI != string(h.target):
				t.Fatalf("host %q target %q, net/http %q %q", h.host, h.target, r.Host, r.RequestURI)
			case r.Close != h.close:
				t.Fatalf("close %v, net/http %v", h.close, r.Close)
			case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
				t.Fatalf("net/http sees a body: length %d, %v", r.ContentLength, r.TransferEncoding)
			}
			for i, name := range p.names {
				want := r.Header[name]
				got := h.header[i]
				if len(want) > 1 || len(want) == 1 != (got != nil) || got != nil && string(got) != want[0] {
					t.Fatalf("%s = %q, net/http %q", name, got, want)
				}
			}
			// net/http's request ends where the fast path's does.
			if left := br.Buffered(); left != len(b)-n {
				t.Fatalf("net/http left %d bytes after the head, fast path %d", left, len(b)-n)
			}
		}
	})
}

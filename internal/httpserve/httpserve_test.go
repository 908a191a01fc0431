package httpserve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSmugglingPairClosed: a request with both Content-Length and
// Transfer-Encoding is answered and its connection closed, so that the
// bytes after it are never read as a request (RFC 9112 6.1; #18 G: the
// connection stayed open and the next request was answered).
func TestSmugglingPairClosed(t *testing.T) {
	for _, tc := range []struct {
		name, first string
		closed      bool
	}{
		{"content-length and chunked", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
		{"chunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
		{"content-length", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", false},
		{"no body", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Write([]byte(r.URL.Path))
			}), nil)
			go srv.Serve(ln)
			defer srv.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.first+"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			second, err := http.ReadResponse(br, nil)
			if closed := err != nil; closed != tc.closed {
				t.Errorf("after the first response: %v (second response %v), want closed %v", err, second != nil, tc.closed)
			}
			if second != nil {
				second.Body.Close()
			}
		})
	}
}

func TestLimitRanges(t *testing.T) {
	for _, tc := range []struct {
		v       []string
		dropped bool
	}{
		{nil, false},
		{[]string{"bytes=0-1"}, false},
		{[]string{"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15"}, false},
		{[]string{"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16"}, true},
		{[]string{"bytes=0-1", "bytes=2-3"}, true},
	} {
		h := http.Header{}
		if tc.v != nil {
			h["Range"] = tc.v
		}
		if got := LimitRanges(h); got != tc.dropped || (h["Range"] == nil) != (tc.dropped || tc.v == nil) {
			t.Errorf("LimitRanges(%q) = %v, left %q; want %v", tc.v, got, h["Range"], tc.dropped)
		}
	}
}

func TestCheckCert(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cert, key  string
		users      []string
		wantErrHas string
	}{
		{"nothing", "", "", []string{"", ""}, ""},
		{"https with a certificate", "c.pem", "k.pem", []string{":8443", ""}, ""},
		{"rtmps with a certificate", "c.pem", "k.pem", []string{"", ":1936"}, ""},
		{"https without", "", "", []string{":8443"}, "needs a certificate"},
		{"certificate for nothing", "c.pem", "k.pem", []string{"", ""}, "is for a TLS listener"},
		{"key missing", "c.pem", "", []string{":8443"}, "both its files"},
		{"certificate missing", "", "k.pem", nil, "both its files"},
	} {
		err := CheckCert(tc.cert, tc.key, tc.users...)
		if tc.wantErrHas == "" && err != nil || tc.wantErrHas != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErrHas)) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.wantErrHas)
		}
	}
}

// TestDebugServer: the profiler answers on its own listener, and nothing
// else does.
func TestDebugServer(t *testing.T) {
	s, err := DebugServer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer Shutdown(5*time.Second, s)
	for path, want := range map[string]int{"/debug/pprof/cmdline": 200, "/debug/pprof/heap?debug=1": 200, "/live/demo/index.m3u8": 404} {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

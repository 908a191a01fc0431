package pop

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/golivestream/live/internal/fastpath/fastpathtest"
)

// newNode returns a PoP node over origin and a listener on 127.0.0.1:0,
// for the test to serve it as it likes.
func newNode(t *testing.T, origin string) (*Server, net.Listener) {
	t.Helper()
	s, err := New(Config{Origins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return s, ln
}

// TestFastPathMatchesNetHTTP sends the same requests to a PoP served with
// the fast path and to one served by net/http alone, and compares what
// comes back (fastpathtest.Compare).
func TestFastPathMatchesNetHTTP(t *testing.T) {
	seg := randomBody(100 << 10)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch {
		case strings.HasSuffix(r.URL.Path, ".m4s"):
			h.Set("Content-Type", "video/mp4")
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			h.Set("ETag", `"seg"`)
			h.Set("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT")
			h.Set("Content-Length", strconv.Itoa(len(seg)))
			w.Write(seg)
		case strings.HasSuffix(r.URL.Path, ".m3u8"):
			h.Set("Content-Type", "application/vnd.apple.mpegurl")
			h.Set("Cache-Control", "max-age=1")
			w.(http.Flusher).Flush() // no Content-Length: chunked from the origin
			io.WriteString(w, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n")
		default:
			http.NotFound(w, r)
		}
	})
	fastNode, fastURL := startPoP(t, Config{Origins: []string{origin.URL}})
	plain, ln := newNode(t, origin.URL)
	hs := &http.Server{Handler: plain}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	fast, plainAddr := strings.TrimPrefix(fastURL, "http://"), ln.Addr().String()

	get := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: pop\r\nUser-Agent: test\r\n" + strings.Join(headers, "") + "\r\n"
	}
	// Warm both caches so that X-Cache and bodies compare.
	for _, addr := range []string{fast, plainAddr} {
		fastpathtest.Send(t, addr, get("/live/s/e/v0/1.m4s"), get("/live/s/index.m3u8"), get("/live/s/e/v0/404.m4s"))
	}
	cases := []struct {
		name string
		reqs []string
		fast int // requests the fast path answers
	}{
		{"segment", []string{get("/live/s/e/v0/1.m4s")}, 1},
		{"playlist, chunked upstream", []string{get("/live/s/index.m3u8")}, 1},
		{"HEAD", []string{"HEAD /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n"}, 1},
		{"not found, cached", []string{get("/live/s/e/v0/404.m4s")}, 1},
		{"range", []string{get("/live/s/e/v0/1.m4s", "Range: bytes=10-99\r\n")}, 1},
		{"range not satisfiable", []string{get("/live/s/e/v0/1.m4s", "Range: bytes=999999-\r\n")}, 1},
		{"if-none-match", []string{get("/live/s/e/v0/1.m4s", "If-None-Match: \"seg\"\r\n")}, 1},
		{"query ignored", []string{get("/live/s/e/v0/1.m4s?token=abc")}, 1},
		{"pipelined", []string{get("/live/s/e/v0/1.m4s"), get("/live/s/index.m3u8"), get("/live/s/e/v0/1.m4s")}, 3},
		{"then net/http", []string{get("/live/s/e/v0/1.m4s"), "OPTIONS /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n", get("/live/s/e/v0/1.m4s")}, 1},
		{"POST", []string{"POST /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\nContent-Length: 2\r\n\r\nhi"}, 0},
		{"HTTP/1.0", []string{"GET /live/s/e/v0/1.m4s HTTP/1.0\r\n\r\n"}, 0},
		{"healthz", []string{get("/healthz")}, 0},
		{"escaped path", []string{get("/live/s/e/v0/%31.m4s")}, 0},
		{"bare LF", []string{"GET /live/s/e/v0/1.m4s HTTP/1.1\nHost: pop\n\n"}, 0},
		{"large head", []string{get("/live/s/e/v0/1.m4s", "Cookie: "+strings.Repeat("c", 8<<10)+"\r\n")}, 0},
		{"connection close", []string{get("/live/s/e/v0/1.m4s", "Connection: close\r\n")}, 1},
		{"host with port", []string{"GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"}, 1},
		{"malformed host", []string{"GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: a\"b\r\n\r\n"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, handed := counterValue(fastNode.metrics.fastRequests), counterValue(fastNode.metrics.handoffs)
			// Age may differ by a second: the caches were filled one
			// after the other.
			fastpathtest.Compare(t, fast, plainAddr, c.reqs, "Age")
			if n := counterValue(fastNode.metrics.fastRequests) - before; int(n) != c.fast {
				t.Errorf("fast path answered %v requests, want %d", n, c.fast)
			}
			if n, want := counterValue(fastNode.metrics.handoffs)-handed, min(len(c.reqs)-c.fast, 1); int(n) != want {
				t.Errorf("fast path handed over %v connections, want %d", n, want)
			}
		})
	}
}

// counterValue reads c.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestFastPathClientLeavesMidBody: a client that leaves while its
// response waits for upstream bytes ends the upstream fetch when nobody
// else wants it, as on net/http, though the fast path has nothing to
// write it: its departure ends the request's context (fastpath), and the
// fill's last reader leaving stops the fetch (fill.detach).
func TestFastPathClientLeavesMidBody(t *testing.T) {
	body := randomBody(32 << 10)
	canceled := make(chan string, 4)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body[:100]) // the rest never comes, as from a stalled upstream
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		canceled <- r.URL.Path
	})
	s, ln := newNode(t, origin.URL)
	serveNode(t, s, ln)
	gone, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(gone, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(gone), nil); err != nil {
		t.Fatal(err)
	}
	gone.Close()
	if p := await(t, canceled, "canceled origin request"); p != "/live/s/e/v0/1.m4s" {
		t.Fatalf("origin request for %s canceled", p)
	}
}

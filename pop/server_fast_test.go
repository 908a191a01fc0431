package pop

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

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
	seg := randomBody(sendfileMin + 1000) // sent from its body file on the fast path
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
	if counterValue(fastNode.metrics.sendfile) == 0 {
		t.Error("no segment was sent from its body file: the comparison did not cover sendfile")
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

// TestFastPathStreamsArrivingBody: clients held for a body that arrives
// in pieces get each piece as it comes and, through the fast path, the
// last piece together with the body's end (fastpath.LastWriter), which
// must leave the connection ready for its next request; a body that fails
// after its last bytes arrived is cut off, never ended cleanly.
func TestFastPathStreamsArrivingBody(t *testing.T) {
	body := randomBody(48 << 10)
	cuts := []int{0, 16 << 10, 32 << 10, len(body)}
	gates := make([]chan struct{}, len(cuts)-1)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		if strings.HasSuffix(r.URL.Path, "/2.m4s") { // fails after all its bytes
			w.Write(body)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		for i, g := range gates { // chunked: no Content-Length
			<-g
			w.Write(body[cuts[i]:cuts[i+1]])
			if i < len(gates)-1 { // the last piece leaves with the end, as from our origin
				w.(http.Flusher).Flush()
			}
		}
	})
	s, ln := newNode(t, origin.URL)
	serveNode(t, s, ln)

	const clients = 4
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	cs := make([]client, clients)
	for i := range cs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		cs[i] = client{c, bufio.NewReader(c)}
		io.WriteString(c, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
	}
	close(gates[0])
	resps := make([]*http.Response, clients)
	for i, c := range cs {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) == 0 {
			t.Fatalf("client %d: not chunked (%v): the test needs a body of unknown length", i, resp.Header)
		}
		first := make([]byte, cuts[1])
		if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, body[:cuts[1]]) {
			t.Fatalf("client %d: first piece: %v", i, err)
		}
		resps[i] = resp
	}
	for _, g := range gates[1:] {
		close(g)
	}
	for i, resp := range resps {
		rest, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(rest, body[cuts[1]:]) {
			t.Fatalf("client %d: rest of the body: %d bytes, %v", i, len(rest), err)
		}
		// The connection goes on: its next answer is a hit.
		io.WriteString(cs[i].c, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
		again, err := http.ReadResponse(cs[i].br, nil)
		if err != nil {
			t.Fatalf("client %d, next request: %v", i, err)
		}
		if b, err := io.ReadAll(again.Body); err != nil || !bytes.Equal(b, body) || again.Header.Get("X-Cache") != "hit" {
			t.Fatalf("client %d, next request: %d bytes, X-Cache %q, %v", i, len(b), again.Header.Get("X-Cache"), err)
		}
	}

	// A body whose fetch fails once all its bytes are in.
	io.WriteString(cs[0].c, "GET /live/s/e/v0/2.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
	resp, err := http.ReadResponse(cs[0].br, nil)
	if err != nil {
		return // cut off before its head: fine
	}
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("a failed body ended cleanly: %d bytes, status %d", len(b), resp.StatusCode)
	}
}

// blockWriter is a ResponseWriter that takes a header block, as the fast
// path's does, and records it.
type blockWriter struct {
	*httptest.ResponseRecorder
	block []byte
}

func (w *blockWriter) SetHeaderBlock(b []byte) { w.block = b }

// TestHeaderBlock: a whole answer to a writer that takes a header block
// (the fast path's) gives it the object's lines and the CORS pair, and
// keeps only what changes per response in the map; a range request,
// which has its own header, and a conditional one use the map alone.
// TestFastPathMatchesNetHTTP checks that the two ways answer the same.
func TestHeaderBlock(t *testing.T) {
	seg := randomBody(1000)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"seg"`)
		w.Write(seg)
	})
	s, err := New(Config{Origins: []string{origin.URL}})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(header ...string) *blockWriter {
		r := httptest.NewRequest(http.MethodGet, "/live/s/e/v0/1.m4s", nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := &blockWriter{ResponseRecorder: httptest.NewRecorder()}
		s.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		name      string
		header    []string
		code      int
		block     bool
		mapHolds  []string // names the map must hold
		mapLacks  []string // and must not
		blockHold []string // lines the block must hold
	}{
		{name: "miss", code: 200, block: true,
			mapHolds:  []string{"Content-Length", "Age", "X-Cache"},
			mapLacks:  []string{"Content-Type", "Etag", "Cache-Control", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers"},
			blockHold: []string{"Content-Type: video/mp4\r\n", "Etag: \"seg\"\r\n", "Access-Control-Allow-Origin: *\r\n", "Access-Control-Expose-Headers: Date, ETag"}},
		{name: "hit", code: 200, block: true,
			mapHolds: []string{"Content-Length", "Age", "X-Cache"}, mapLacks: []string{"Content-Type", "Access-Control-Allow-Origin"}},
		{name: "range", header: []string{"Range", "bytes=0-9"}, code: 206,
			mapHolds: []string{"Content-Type", "Etag", "Access-Control-Allow-Origin", "Content-Range"}},
		{name: "not modified", header: []string{"If-None-Match", `"seg"`}, code: 304,
			mapHolds: []string{"Etag", "Access-Control-Allow-Origin"}},
	} {
		w := serve(tc.header...)
		if w.Code != tc.code {
			t.Fatalf("%s: status %d, want %d", tc.name, w.Code, tc.code)
		}
		if got := w.block != nil; got != tc.block {
			t.Errorf("%s: block given %v, want %v (%q)", tc.name, got, tc.block, w.block)
		}
		for _, k := range tc.mapHolds {
			if _, ok := w.Header()[k]; !ok {
				t.Errorf("%s: the map lacks %s: %v", tc.name, k, w.Header())
			}
		}
		for _, k := range tc.mapLacks {
			if _, ok := w.Header()[k]; ok {
				t.Errorf("%s: the map holds %s, which the block has: %v", tc.name, k, w.Header())
			}
		}
		for _, line := range tc.blockHold {
			if !bytes.Contains(w.block, []byte(line)) {
				t.Errorf("%s: the block lacks %q:\n%s", tc.name, line, w.block)
			}
		}
		if bytes.Contains(append([]byte("\r\n"), w.block...), []byte("\r\nContent-Length:")) {
			t.Errorf("%s: the block has Content-Length, which the writer reads from the map", tc.name)
		}
	}
}

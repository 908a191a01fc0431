package pop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

// rawExchange sends reqs on one connection, written at once (pipelined),
// and reads as many responses back, each with its body.
func rawExchange(t *testing.T, addr string, reqs ...string) ([]*http.Response, [][]byte, *bufio.Reader, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies [][]byte
	for _, q := range reqs {
		method, _, _ := strings.Cut(q, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response to %q: %v", q, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body of %q: %v", q, err)
		}
		resps, bodies = append(resps, resp), append(bodies, body)
	}
	return resps, bodies, br, c
}

// TestFastPathMatchesNetHTTP sends the same requests to a PoP served with
// the fast path and to one served by net/http alone, and compares what
// comes back: status, framing, the headers players read, and bodies.
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
	addrs := map[string]string{"fast": strings.TrimPrefix(fastURL, "http://"), "net/http": ln.Addr().String()}

	get := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: pop\r\nUser-Agent: test\r\n" + strings.Join(headers, "") + "\r\n"
	}
	// Warm both caches so that X-Cache and bodies compare.
	for _, addr := range addrs {
		rawExchange(t, addr, get("/live/s/e/v0/1.m4s"), get("/live/s/index.m3u8"), get("/live/s/e/v0/404.m4s"))
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
			before := counterValue(fastNode.metrics.fastRequests)
			type result struct {
				resps  []*http.Response
				bodies [][]byte
			}
			got := map[string]result{}
			for name, addr := range addrs {
				resps, bodies, br, conn := rawExchange(t, addr, c.reqs...)
				got[name] = result{resps, bodies}
				if resps[len(resps)-1].Close { // the server must then close
					conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, err := br.ReadByte(); err != io.EOF {
						t.Errorf("%s: read after Connection: close = %v, want EOF", name, err)
					}
				}
			}
			if n := counterValue(fastNode.metrics.fastRequests) - before; int(n) != c.fast {
				t.Errorf("fast path answered %v requests, want %d", n, c.fast)
			}
			f, p := got["fast"], got["net/http"]
			for i := range c.reqs {
				fr, pr := f.resps[i], p.resps[i]
				if fr.StatusCode != pr.StatusCode || fr.ContentLength != pr.ContentLength || fr.Close != pr.Close ||
					string(f.bodies[i]) != string(p.bodies[i]) {
					t.Errorf("request %d: fast %d length %d close %v body %d bytes; net/http %d length %d close %v body %d bytes",
						i, fr.StatusCode, fr.ContentLength, fr.Close, len(f.bodies[i]), pr.StatusCode, pr.ContentLength, pr.Close, len(p.bodies[i]))
				}
				for _, h := range []string{"Content-Type", "Cache-Control", "Content-Range", "Etag", "Last-Modified",
					"X-Cache", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Allow", "Accept-Ranges"} {
					if fv, pv := fr.Header.Values(h), pr.Header.Values(h); strings.Join(fv, ",") != strings.Join(pv, ",") {
						t.Errorf("request %d: %s fast %q, net/http %q", i, h, fv, pv)
					}
				}
				if fd, pd := fr.Header.Get("Date") != "", pr.Header.Get("Date") != ""; fd != pd {
					t.Errorf("request %d: Date given: fast %v, net/http %v", i, fd, pd)
				}
			}
		})
	}
}

// TestFastPathShutdown: Shutdown ends the idle fast connections at once,
// lets a response in progress finish, answers a request it holds with
// Connection: close, as net/http, and Serve returns after all.
func TestFastPathShutdown(t *testing.T) {
	body := randomBody(64 << 10)
	release := make(chan struct{})
	heldArrived := make(chan struct{})
	halves := gated(body, release)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live/s/e/v0/2.m4s" {
			halves(w, r)
			return
		}
		close(heldArrived) // no header before release, as an origin holding a request
		<-release
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	s, ln := newNode(t, origin.URL)
	hs := &http.Server{Handler: s}
	served := make(chan error, 1)
	go func() { served <- s.Serve(hs, ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var runWG sync.WaitGroup
	runWG.Add(1)
	go func() { defer runWG.Done(); s.Run(ctx) }()
	defer func() { cancel(); runWG.Wait() }()
	addr := ln.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(busy, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
	br := bufio.NewReader(busy)
	resp, err := http.ReadResponse(br, nil) // the first half is in: the response is in progress
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(held, "GET /live/s/e/v0/2.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
	<-heldArrived

	shut := make(chan error, 1)
	go func() { shut <- hs.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read = %v, want EOF at shutdown", err)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) with a response in progress", err)
	default:
	}
	close(release)
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != string(body) {
		t.Fatalf("response in progress: %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	hbr := bufio.NewReader(held)
	hresp, err := http.ReadResponse(hbr, nil)
	if err != nil {
		t.Fatalf("held request: %v", err)
	}
	if got, err := io.ReadAll(hresp.Body); err != nil || string(got) != string(body) || !hresp.Close {
		t.Fatalf("held request: %d bytes, %v, Connection: close %v; want %d bytes and close", len(got), err, hresp.Close, len(body))
	}
	if _, err := hbr.ReadByte(); err != io.EOF {
		t.Fatalf("held request's connection: read after the response = %v, want EOF", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve = %v, want http.ErrServerClosed", err)
	}
}

// TestFastPathTimeouts: a connection that sends half a head, or nothing,
// is closed after the http.Server's ReadHeaderTimeout, as net/http would:
// IdleTimeout is for the wait between two requests, not before the first
// (#18 D: silent connections were kept for the idle timeout).
func TestFastPathTimeouts(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	s, ln := newNode(t, origin.URL)
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}
	go s.Serve(hs, ln)
	t.Cleanup(func() { hs.Close() })
	for _, send := range []string{"", "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost:"} {
		start := time.Now() // before any deadline can be set
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, send)
		c.SetReadDeadline(start.Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after %q: read = %v, want EOF", send, err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("after %q: closed after %v, before the 300 ms timeout", send, d)
		}
		c.Close()
	}
}

// counterValue reads c.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestFastPathRequestFields: the handler sees on the fast path the
// request fields net/http would give it, also when they change from one
// request to the next on the same connection.
func TestFastPathRequestFields(t *testing.T) {
	s, ln := newNode(t, "http://127.0.0.1:1")
	type fields struct{ method, host, uri, path, query, agent string }
	seen := make(chan fields, 3)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- fields{r.Method, r.Host, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.UserAgent()}
		w.WriteHeader(http.StatusNoContent)
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(hs, ln) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	}()
	rawExchange(t, ln.Addr().String(),
		"GET /live/s/e/v0/1.m4s?t=1 HTTP/1.1\r\nHost: pop-a:8080\r\nUser-Agent: a\r\n\r\n",
		"HEAD /live/s/index.m3u8 HTTP/1.1\r\nHost: [::1]\r\n\r\n",
		"GET /live/s/e/v0/1.m4s?t=1 HTTP/1.1\r\nHost: pop-a:8080\r\nUser-Agent: a\r\n\r\n")
	want := []fields{
		{"GET", "pop-a:8080", "/live/s/e/v0/1.m4s?t=1", "/live/s/e/v0/1.m4s", "t=1", "a"},
		{"HEAD", "[::1]", "/live/s/index.m3u8", "/live/s/index.m3u8", "", ""},
		{"GET", "pop-a:8080", "/live/s/e/v0/1.m4s?t=1", "/live/s/e/v0/1.m4s", "t=1", "a"},
	}
	for i, w := range want {
		if got := <-seen; got != w {
			t.Errorf("request %d: handler saw %+v, want %+v", i, got, w)
		}
	}
	if n := counterValue(s.metrics.fastRequests); n != 3 {
		t.Errorf("fast path answered %v requests, want 3", n)
	}
}

// TestFastPathClientLeavesWhileHeld: a client that leaves while its
// response waits for upstream bytes ends the upstream fetch when nobody
// else wants it, as on net/http, though the fast path has nothing to write
// it; a client that sends its next request meanwhile is not taken for gone.
func TestFastPathClientLeavesWhileHeld(t *testing.T) {
	body := randomBody(32 << 10)
	arrived := make(chan string, 4)
	canceled := make(chan string, 4)
	release := make(chan struct{})
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body[:100]) // the rest once released, as a slow upstream
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			canceled <- r.URL.Path
			return
		}
		w.Write(body[100:])
	})
	s, ln := newNode(t, origin.URL)
	watching := make(chan string, 4)
	s.watchWaiting = func() { watching <- "watch" }
	serveNode(t, s, ln)
	addr := ln.Addr().String()
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: pop\r\n\r\n" }

	// Leaves after the first bytes: the origin's request is canceled.
	gone, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(gone, get("/live/s/e/v0/1.m4s"))
	br := bufio.NewReader(gone)
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	await(t, watching, "departure watch")
	gone.Close()
	if p := await(t, canceled, "canceled origin request"); p != "/live/s/e/v0/1.m4s" {
		t.Fatalf("origin request for %s canceled", p)
	}

	// Stays and pipelines its next request during the hold: both answered.
	stays, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stays.Close()
	stays.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(stays, get("/live/s/e/v0/2.m4s"))
	br = bufio.NewReader(stays)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	await(t, watching, "departure watch")
	io.WriteString(stays, get("/live/s/e/v0/2.m4s"))
	close(release)
	for i := range 2 {
		if i > 0 {
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
			t.Fatalf("response %d: status %d, %d bytes, %v", i, resp.StatusCode, len(b), err)
		}
	}
	select {
	case p := <-canceled:
		t.Fatalf("origin request for %s canceled, though its client stayed", p)
	default:
	}
}

// TestFastPathHandlerClose: a handler's Connection: close ends the
// connection after its response, as on net/http, even with a request
// pipelined behind it.
func TestFastPathHandlerClose(t *testing.T) {
	s, ln := newNode(t, "http://127.0.0.1:1")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive, close")
		w.Write([]byte("bye"))
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(hs, ln) }()
	defer func() {
		hs.Close()
		<-served
	}()
	req := "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n"
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req+req)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "bye" || !resp.Close {
		t.Fatalf("body %q, Connection: close %v", b, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read after the response = %v, want EOF", err)
	}
	if n := counterValue(s.metrics.fastRequests); n != 1 {
		t.Errorf("fast path answered %v requests, want 1", n)
	}
}

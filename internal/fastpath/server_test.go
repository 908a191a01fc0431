package fastpath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golivestream/live/internal/fastpath/fastpathtest"
)

// served is a fast path serving on 127.0.0.1:0 until the test ends.
type served struct {
	addr     string
	hs       *http.Server
	answered atomic.Int64 // requests the fast path answered
	handed   atomic.Int64 // connections it handed over
	done     chan error   // Serve's result
}

// serve serves hs on 127.0.0.1:0 with the fast path for paths under
// /live/, keeping testHeaders; cfg may set the other fields.
func serve(t *testing.T, hs *http.Server, cfg Config) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sv := &served{addr: ln.Addr().String(), hs: hs, done: make(chan error, 1)}
	cfg.HTTP, cfg.Headers, cfg.Prefixes = hs, testHeaders, []string{"/live/", "/t/"}
	cfg.Answered = func() { sv.answered.Add(1) }
	cfg.HandedOver = func() { sv.handed.Add(1) }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { sv.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-sv.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})
	return sv
}

// await returns what ch receives, failing the test after 10 s.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		var zero T
		return zero
	}
}

// manyHeaders returns n header names, the first Range.
func manyHeaders(n int) []string {
	names := []string{"Range"}
	for i := 1; i < n; i++ {
		names = append(names, fmt.Sprintf("X-H%d", i))
	}
	return names
}

func TestNew(t *testing.T) {
	h := http.NotFoundHandler()
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"handler from HTTP", Config{HTTP: &http.Server{Handler: h}}, true},
		{"handler of its own", Config{HTTP: &http.Server{}, Handler: h, Headers: []string{"range", "X-Hop"}, Prefixes: []string{"/live/"}}, true},
		{"no HTTP", Config{Handler: h}, false},
		{"no handler", Config{HTTP: &http.Server{}}, false},
		{"relative prefix", Config{HTTP: &http.Server{Handler: h}, Prefixes: []string{"live/"}}, false},
		{"Host", Config{HTTP: &http.Server{Handler: h}, Headers: []string{"host"}}, false},
		{"Content-Length", Config{HTTP: &http.Server{Handler: h}, Headers: []string{"Content-Length"}}, false},
		{"not a name", Config{HTTP: &http.Server{Handler: h}, Headers: []string{"a b"}}, false},
		{"empty name", Config{HTTP: &http.Server{Handler: h}, Headers: []string{""}}, false},
		{"64 headers", Config{HTTP: &http.Server{Handler: h}, Headers: manyHeaders(64)}, true},
		{"65 headers", Config{HTTP: &http.Server{Handler: h}, Headers: manyHeaders(65)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(c.cfg)
			if (err == nil) != c.ok {
				t.Fatalf("New: %v, want ok %v", err, c.ok)
			}
			if err == nil && c.cfg.Headers != nil && s.parser.names[0] != "Range" {
				t.Errorf("headers kept as %q, not in canonical form", s.parser.names)
			}
		})
	}
}

// TestFastPathTimeouts: a connection that sends half a head, or nothing,
// is closed after the http.Server's ReadHeaderTimeout, as net/http would:
// IdleTimeout is for the wait between two requests, not before the first
// (#18 D: silent connections were kept for the idle timeout).
func TestFastPathTimeouts(t *testing.T) {
	hs := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}
	sv := serve(t, hs, Config{})
	for _, send := range []string{"", "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost:"} {
		start := time.Now() // before any deadline can be set
		c, err := net.Dial("tcp", sv.addr)
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

// TestFastPathRequestFields: the handler sees on the fast path the
// request fields net/http would give it, also when they change from one
// request to the next on the same connection, and only the headers it
// said it reads.
func TestFastPathRequestFields(t *testing.T) {
	type fields struct{ method, host, uri, path, query, agent, accept string }
	seen := make(chan fields, 4)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- fields{r.Method, r.Host, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.UserAgent(), r.Header.Get("Accept")}
		w.WriteHeader(http.StatusNoContent)
	})}
	sv := serve(t, hs, Config{})
	fastpathtest.Send(t, sv.addr,
		"GET /live/s/e/v0/1.m4s?t=1 HTTP/1.1\r\nHost: pop-a:8080\r\nUser-Agent: a\r\nAccept: */*\r\n\r\n",
		"HEAD /live/s/index.m3u8 HTTP/1.1\r\nHost: [::1]\r\n\r\n",
		"GET /live/s/e/v0/1.m4s?t=1 HTTP/1.1\r\nHost: pop-a:8080\r\nUser-Agent: a\r\n\r\n",
		"GET /live/s/e/v0/2.m4s HTTP/1.1\r\nHost: pop-a:8080\r\nUser-Agent: b\r\n\r\n") // the same headers, another value
	want := []fields{
		{"GET", "pop-a:8080", "/live/s/e/v0/1.m4s?t=1", "/live/s/e/v0/1.m4s", "t=1", "a", ""},
		{"HEAD", "[::1]", "/live/s/index.m3u8", "/live/s/index.m3u8", "", "", ""},
		{"GET", "pop-a:8080", "/live/s/e/v0/1.m4s?t=1", "/live/s/e/v0/1.m4s", "t=1", "a", ""},
		{"GET", "pop-a:8080", "/live/s/e/v0/2.m4s", "/live/s/e/v0/2.m4s", "", "b", ""},
	}
	for i, w := range want {
		if got := <-seen; got != w {
			t.Errorf("request %d: handler saw %+v, want %+v", i, got, w)
		}
	}
	if n := sv.answered.Load(); n != 4 {
		t.Errorf("fast path answered %v requests, want 4", n)
	}
}

// TestFastPathHandlerClose: a handler's Connection: close ends the
// connection after its response, as on net/http, even with a request
// pipelined behind it.
func TestFastPathHandlerClose(t *testing.T) {
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive, close")
		w.Write([]byte("bye"))
	})}
	sv := serve(t, hs, Config{})
	req := "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n"
	c, err := net.Dial("tcp", sv.addr)
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
	if n := sv.answered.Load(); n != 1 {
		t.Errorf("fast path answered %v requests, want 1", n)
	}
}

// TestFastPathShutdown: Shutdown ends the idle fast connections at once,
// lets a response in progress finish, answers a request it holds with
// Connection: close, as net/http, and Serve returns after all.
func TestFastPathShutdown(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 4<<10)
	release := make(chan struct{})
	heldArrived := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.URL.Path == "/live/held" {
			close(heldArrived) // no header before release, as a request held for upstream
			<-release
			io.WriteString(w, body)
			return
		}
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, body[len(body)/2:])
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{HTTP: hs, Prefixes: []string{"/live/"}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
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
	io.WriteString(busy, "GET /live/halves HTTP/1.1\r\nHost: pop\r\n\r\n")
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
	io.WriteString(held, "GET /live/held HTTP/1.1\r\nHost: pop\r\n\r\n")
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
	if err != nil || string(got) != body {
		t.Fatalf("response in progress: %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	hbr := bufio.NewReader(held)
	hresp, err := http.ReadResponse(hbr, nil)
	if err != nil {
		t.Fatalf("held request: %v", err)
	}
	if got, err := io.ReadAll(hresp.Body); err != nil || string(got) != body || !hresp.Close {
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

// TestFastPathPanic: a handler's panic ends its connection without a
// response, as on net/http; one with http.ErrAbortHandler cuts a body
// short, and other connections are served on.
func TestFastPathPanic(t *testing.T) {
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/live/abort":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			panic(http.ErrAbortHandler)
		case "/live/panic":
			panic("handler bug")
		}
		io.WriteString(w, "ok")
	})}
	sv := serve(t, hs, Config{})
	for _, path := range []string{"/live/abort", "/live/panic"} {
		c, err := net.Dial("tcp", sv.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: pop\r\n\r\n")
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil); err == nil {
			if b, err := io.ReadAll(resp.Body); err == nil {
				t.Errorf("%s: a complete response, %q", path, b)
			}
		}
	}
	if x := fastpathtest.Send(t, sv.addr, "GET /live/ok HTTP/1.1\r\nHost: pop\r\n\r\n"); string(x.Bodies[0]) != "ok" {
		t.Errorf("after the panics: %q", x.Bodies[0])
	}
}

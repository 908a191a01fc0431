package pop

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

// BenchmarkServeHit measures the proxy layer's own cost for a cache hit on
// a 600-byte playlist, without the network (see bench/pop for wrk runs).
func BenchmarkServeHit(b *testing.B) {
	b.Run("public", func(b *testing.B) { benchHit(b, hotPlaylist(b, false), "/live/s/e/v0/index.m3u8") })
	// A private stream, a token on every request: it is checked from the
	// verifier's cache (#23: within 0.95x of the public hit).
	b.Run("token", func(b *testing.B) {
		s := hotPlaylist(b, true)
		kit := newTokenKit(b)
		tok := kit.token(b, access.Claims{Stream: "s", MaxAddrs: 2})
		s.cfg.Tokens = kit.v
		benchHit(b, s, "/t/"+tok+"/live/s/e/v0/index.m3u8")
	})
}

func benchHit(b *testing.B, s *Server, path string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		clear(w.header)
		w.code, w.n = 0, 0
		s.ServeHTTP(w, req)
		if w.code != 200 || w.n != 600 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// hotPlaylist returns a node holding a 600-byte playlist at
// /live/s/e/v0/index.m3u8, of a stream that needs a token when private.
func hotPlaylist(b *testing.B, private bool) *Server {
	body := strings.Repeat("#EXTINF:1.00000,\n1.m4s\n", 27)[:600]
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if private {
			w.Header().Set(AccessHeader, "token")
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Write([]byte(body))
	}))
	b.Cleanup(origin.Close)
	s, err := New(Config{Origins: []string{origin.URL}})
	if err != nil {
		b.Fatal(err)
	}
	s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/live/s/e/v0/index.m3u8", nil)) // fill
	return s
}

// discardWriter is a reusable http.ResponseWriter that keeps the status
// and counts the body, so that the allocations reported are the
// handler's own, not a recorder's.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// BenchmarkFastPathHit measures the fast path (Serve, package fastpath)
// for the same hit, from request bytes to response bytes, on a connection
// that only replays the request and discards the response: parsing, the
// handler and the response head, without the kernel.
func BenchmarkFastPathHit(b *testing.B) {
	s := hotPlaylist(b, false)
	req := "GET /live/s/e/v0/index.m3u8 HTTP/1.1\r\nHost: pop\r\nUser-Agent: hls.js\r\nAccept: */*\r\n\r\n"
	nc := &replayConn{req: []byte(req), left: b.N, closed: make(chan struct{})}
	ln := &oneConnListener{c: nc, closed: make(chan struct{})}
	hs := &http.Server{Handler: s}
	served := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { served <- s.Serve(hs, ln) }()
	<-nc.closed // every request answered
	b.StopTimer()
	hs.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		b.Fatal(err)
	}
	if want := b.N * (600 + 200); nc.written < want {
		b.Fatalf("%d bytes written for %d requests", nc.written, b.N)
	}
}

// oneConnListener is a net.Listener that accepts c, then nothing until it
// is closed.
type oneConnListener struct {
	c         net.Conn
	accepted  bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.accepted {
		l.accepted = true
		return l.c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.RemoteAddr() }

// replayConn is a net.Conn that reads req left times, then EOF, and
// counts what is written to it; closed is closed with it.
type replayConn struct {
	net.Conn // not called
	req      []byte
	left     int
	written  int
	closed   chan struct{}
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	c.left--
	return copy(p, c.req), nil
}

func (c *replayConn) Write(p []byte) (int, error)      { c.written += len(p); return len(p), nil }
func (c *replayConn) Close() error                     { close(c.closed); return nil }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

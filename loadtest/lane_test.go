package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLane returns a lane whose requests stop when ctx is done.
func testLane(ctx context.Context, timeout time.Duration) *lane {
	return newLane(ctx, &laneShared{
		timeout: timeout,
		dialer:  net.Dialer{Timeout: time.Second},
		bufs:    &sync.Pool{},
		scratch: make([]byte, discardScratchSize),
	}, "lane-test/1")
}

// rawServer answers every request it reads on 127.0.0.1:0 with the bytes
// respond gives, and then closes the connection when respond says so. It
// counts the connections it accepted.
type rawServer struct {
	URL   string
	conns atomic.Int64
}

func startRawServer(t *testing.T, respond func(r *http.Request) (resp string, close bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{URL: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{} // guarded by mu
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					resp, closeAfter := respond(req)
					if _, err := c.Write([]byte(resp)); err != nil || closeAfter {
						return
					}
				}
			})
		}
	})
	return s
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// kindOf returns err's kind, "stopped" for errStopped, "" for nil.
func kindOf(err error) string {
	var fe *fetchError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errStopped):
		return "stopped"
	case errors.As(err, &fe):
		return kindName(fe.kind, fe.status)
	}
	return "unclassified: " + err.Error()
}

// bigBody is a body larger than the lane's buffer and a socket read.
var bigBody = strings.Repeat("x", 300_000)

// framingCases are responses of each framing, and broken ones, for
// TestLaneFraming and the seeds of FuzzResponse.
var framingCases = []struct {
	name  string
	resp  string
	close bool   // the server closes after the response
	body  string // want
	kind  string // want: the error's kind
	conns int64  // connections for two requests
}{
	{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", body: "hello", conns: 1},
	{name: "content-length large", resp: "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + bigBody, body: bigBody, conns: 1},
	{name: "chunked", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n", body: "hello world", conns: 1},
	{name: "chunked large", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n493e0\r\n" + bigBody + "\r\n0\r\n\r\n", body: bigBody, conns: 1},
	{name: "chunked over content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", body: "abc", conns: 1},
	{name: "until close", resp: "HTTP/1.0 200 OK\r\n\r\nhello", close: true, body: "hello", conns: 2},
	{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", close: true, body: "ok", conns: 2},
	{name: "1xx skipped", resp: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok", conns: 1},
	{name: "bare LF", resp: "HTTP/1.1 200 OK\ncontent-length: 2\n\nok", body: "ok", conns: 1},
	{name: "cut short", resp: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + bigBody[:1000], close: true, kind: "aborted", conns: 2},
	{name: "chunked cut short", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc", close: true, kind: "aborted", conns: 2},
	{name: "closed before answering", resp: "", close: true, kind: "aborted", conns: 2},
	{name: "status", resp: "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", kind: "404", conns: 1},
	{name: "status chunked", resp: "HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n", kind: "503", conns: 1},
	{name: "bad status line", resp: "HTTP/2 200\r\n\r\n", close: true, kind: "other", conns: 2},
	{name: "bad content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", close: true, kind: "other", conns: 2},
}

// TestLaneFraming reads bodies of each framing, kept and dropped, over
// one connection when the response allows it; bodies cut short are
// "aborted", error statuses are counted by status and keep the
// connection.
func TestLaneFraming(t *testing.T) {
	for _, tc := range framingCases {
		for _, keep := range []bool{true, false} {
			name := tc.name + "/drop"
			if keep {
				name = tc.name + "/keep"
			}
			t.Run(name, func(t *testing.T) {
				srv := startRawServer(t, func(*http.Request) (string, bool) { return tc.resp, tc.close })
				l := testLane(t.Context(), 5*time.Second)
				defer l.close()
				base := mustParse(t, srv.URL+"/live/s/index.m3u8")
				for i := range 2 {
					body, final, n, err := l.get(base, "0.m4s", keep, nil)
					if got := kindOf(err); got != tc.kind {
						t.Fatalf("request %d: error %v (%s), want kind %q", i, err, got, tc.kind)
					}
					if err != nil {
						continue
					}
					if n != int64(len(tc.body)) {
						t.Errorf("request %d: length %d, want %d", i, n, len(tc.body))
					}
					if keep && (string(body) != tc.body || final.String() != srv.URL+"/live/s/0.m4s") {
						t.Errorf("request %d: body %.20q (%d bytes) from %v, want %.20q from /live/s/0.m4s", i, body, len(body), final, tc.body)
					}
				}
				if got := srv.conns.Load(); got != tc.conns {
					t.Errorf("%d connections for two requests, want %d", got, tc.conns)
				}
			})
		}
	}
}

// TestLaneRequest checks what the lane sends: the request target resolved
// against the base, Host, User-Agent.
func TestLaneRequest(t *testing.T) {
	got := make(chan string, 3)
	srv := startRawServer(t, func(r *http.Request) (string, bool) {
		got <- r.Method + " " + r.RequestURI + " " + r.Host + " " + r.UserAgent()
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false
	})
	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	host := strings.TrimPrefix(srv.URL, "http://")
	base := mustParse(t, srv.URL+"/live/s/v/index.m3u8?token=a")
	for _, c := range []struct{ ref, want string }{
		{"", "/live/s/v/index.m3u8?token=a"},
		{"3.m4s?token=b", "/live/s/v/3.m4s?token=b"},
		{"../a/init.mp4", "/live/s/a/init.mp4"},
	} {
		if _, _, _, err := l.get(base, c.ref, false, nil); err != nil {
			t.Fatal(err)
		}
		if line, want := <-got, "GET "+c.want+" "+host+" lane-test/1"; line != want {
			t.Errorf("ref %q: sent %q, want %q", c.ref, line, want)
		}
	}
}

// TestLaneRedirect follows a load balancer's 302 to another host, returns
// that URL, and stays there: later requests resolved against it go to the
// PoP alone.
func TestLaneRedirect(t *testing.T) {
	var popConns atomic.Int64
	pop := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.Path))
	}))
	pop.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			popConns.Add(1)
		}
	}
	pop.Start()
	t.Cleanup(pop.Close)
	lb := &redirector{targets: []string{pop.URL}}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)

	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	body, final, _, err := l.get(mustParse(t, lbSrv.URL+"/play/s/index.m3u8"), "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "/live/s/index.m3u8" || final.String() != pop.URL+"/live/s/index.m3u8" {
		t.Fatalf("body %q from %v, want the PoP's /live/s/index.m3u8", body, final)
	}
	for _, ref := range []string{"v/index.m3u8", "v/0.m4s", "v/1.m4s"} {
		if _, _, _, err := l.get(final, ref, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, c := lb.n.Load(), popConns.Load(); n != 1 || c != 1 {
		t.Errorf("the load balancer answered %d requests, the PoP took %d connections; want 1 and 1", n, c)
	}

	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	t.Cleanup(loop.Close)
	if _, _, _, err := l.get(mustParse(t, loop.URL+"/"), "", false, nil); kindOf(err) != "other" {
		t.Errorf("a redirect loop: %v, want an error of kind other", err)
	}
}

// TestLaneTimeout bounds a request by the connection's deadline, and
// stops a request under way when the player's context ends.
func TestLaneTimeout(t *testing.T) {
	asked := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/half" {
			w.Header().Set("Content-Length", "1000")
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
		}
		asked <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)

	for _, path := range []string{"/never", "/half"} {
		l := testLane(t.Context(), 100*time.Millisecond)
		start := time.Now()
		_, _, _, err := l.get(mustParse(t, srv.URL+path), "", false, nil)
		if kindOf(err) != "timeout" {
			t.Errorf("%s: %v, want a timeout", path, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("%s: timed out after %v, before the 100 ms timeout", path, d)
		}
		<-asked
		l.close()
	}

	ctx, cancel := context.WithCancel(t.Context())
	l := testLane(ctx, time.Minute)
	defer l.close()
	done := make(chan error, 1)
	go func() {
		_, _, _, err := l.get(mustParse(t, srv.URL+"/never"), "", false, nil)
		done <- err
	}()
	<-asked
	cancel()
	if err := <-done; !errors.Is(err, errStopped) {
		t.Errorf("stopped player: %v, want errStopped", err)
	}
	if _, _, _, err := l.get(mustParse(t, srv.URL+"/never"), "", false, nil); !errors.Is(err, errStopped) {
		t.Errorf("request of a stopped player: %v, want errStopped", err)
	}
}

// TestLaneConnectionErrors: a refused connection is "connect"; a
// connection the server closed while idle is dialed again, once, without
// an error.
func TestLaneConnectionErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	l := testLane(t.Context(), time.Second)
	if _, _, _, err := l.get(mustParse(t, closed), "", false, nil); kindOf(err) != "connect" {
		t.Errorf("closed port: %v, want a connect error", err)
	}

	// One response per connection, without saying so.
	srv := startRawServer(t, func(*http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	base := mustParse(t, srv.URL+"/")
	for i := range 3 {
		if _, _, _, err := l.get(base, "", false, nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestLaneTLS reads over https, where bodies are read and dropped in
// user space.
func TestLaneTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 200_000)) // chunked
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	l := testLane(t.Context(), 5*time.Second)
	l.sh.tls = &tls.Config{RootCAs: roots}
	defer l.close()
	for range 2 {
		if _, _, n, err := l.get(mustParse(t, srv.URL+"/x"), "", false, nil); n != 200_000 || err != nil {
			t.Fatalf("got %d bytes, %v", n, err)
		}
	}
	if l.raw != nil {
		t.Error("a TLS connection dropped bodies in the kernel")
	}
}

// TestLaneLimits: a segment may be of any length; a manifest beyond
// maxManifestBytes is an error, as is an error status of any body.
func TestLaneLimits(t *testing.T) {
	huge := strings.Repeat("x", maxManifestBytes+1)
	srv := startRawServer(t, func(r *http.Request) (string, bool) {
		if r.URL.Path == "/error" {
			return "HTTP/1.0 500 Oops\r\n\r\n" + huge, true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(huge)) + "\r\n\r\n" + huge, false
	})
	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	base := mustParse(t, srv.URL+"/big")
	if _, _, n, err := l.get(base, "", false, nil); err != nil || n != int64(len(huge)) {
		t.Errorf("segment: %d bytes, %v; want %d", n, err, len(huge))
	}
	if _, _, _, err := l.get(base, "", true, nil); kindOf(err) != "aborted" {
		t.Errorf("manifest: %v, want it too large (aborted)", err)
	}
	if _, _, _, err := l.get(base, "error", false, nil); kindOf(err) != "500" {
		t.Errorf("error status: %v, want 500", err)
	}
}

// TestQueryDirectives: LL-HLS delivery directives are sent after the
// playlist URL's own query, and the URL a request returns is without
// them, redirected or not, with the lane and with net/http.
func TestQueryDirectives(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/lb/"); ok {
			http.Redirect(w, r, "/live/"+rest+"?"+r.URL.RawQuery, http.StatusFound)
			return
		}
		w.Write([]byte(r.URL.RequestURI()))
	}))
	t.Cleanup(srv.Close)
	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	g := &netHTTPGetter{ctx: t.Context(), r: &run{Generator: &Generator{cfg: Config{RequestTimeout: 5 * time.Second}, client: srv.Client()}}, ua: "test"}
	query := []byte("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")
	for _, get := range []getter{l, g} {
		for _, c := range []struct{ base, sent, final string }{
			{"/live/s/e/v0/index.m3u8", "/live/s/e/v0/index.m3u8?" + string(query), "/live/s/e/v0/index.m3u8"},
			{"/live/s/e/v0/index.m3u8?token=a", "/live/s/e/v0/index.m3u8?token=a&" + string(query), "/live/s/e/v0/index.m3u8?token=a"},
			{"/lb/s/e/v0/index.m3u8", "/live/s/e/v0/index.m3u8?" + string(query), "/live/s/e/v0/index.m3u8"},
			{"/lb/s/e/v0/index.m3u8?token=a", "/live/s/e/v0/index.m3u8?token=a&" + string(query), "/live/s/e/v0/index.m3u8?token=a"},
		} {
			body, final, _, err := get.do(getRequest{base: mustParse(t, srv.URL+c.base), query: query, keep: true})
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != c.sent || final.String() != srv.URL+c.final {
				t.Errorf("%T, %s: sent %s, final %v; want %s and %s", get, c.base, body, final, c.sent, c.final)
			}
		}
	}
}

package pop

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// stubOrigin is an origin whose answers the test scripts. It counts the
// requests per path.
type stubOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	// handle answers a request; the default serves body with immutable
	// caching headers.
	handle func(w http.ResponseWriter, r *http.Request)
	// seen receives every path requested, when not nil.
	seen chan string
}

func newStubOrigin(t testing.TB, handle func(w http.ResponseWriter, r *http.Request)) *stubOrigin {
	t.Helper()
	o := &stubOrigin{counts: map[string]int{}, handle: handle}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		o.mu.Lock()
		o.counts[r.URL.RequestURI()]++
		o.mu.Unlock()
		if o.seen != nil {
			o.seen <- r.URL.RequestURI()
		}
		o.handle(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *stubOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

// startPoP runs a PoP node over origins on 127.0.0.1:0 until the test ends.
func startPoP(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return servePoP(t, cfg, ln), "http://" + ln.Addr().String()
}

func servePoP(t *testing.T, cfg Config, ln net.Listener) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveNode(t, s, ln)
	return s
}

// serveNode serves s on ln, with the fast path, until the test ends.
func serveNode(t *testing.T, s *Server, ln net.Listener) {
	t.Helper()
	hs := &http.Server{Handler: s}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.Serve(hs, ln) }()
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() {
		hs.Close()
		cancel()
		wg.Wait()
	})
}

// randomBody returns n random bytes.
func randomBody(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// gated serves body in two halves: the second only once release is closed.
func gated(body []byte, release <-chan struct{}) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(body[half:])
	}
}

// client has room for thousands of concurrent connections.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2000, DisableCompression: true}}
}

// herd sends n concurrent GETs for path spread over bases. Each request
// reports on headers once its response headers are in (so every request is
// then reading a fill in progress), and its body on bodies.
func herd(t *testing.T, c *http.Client, bases []string, path string, n int) (headers chan struct{}, bodies chan []byte, errs chan error) {
	headers, bodies, errs = make(chan struct{}, n), make(chan []byte, n), make(chan error, n)
	for i := range n {
		go func() {
			resp, err := c.Get(bases[i%len(bases)] + path)
			if err != nil {
				errs <- err
				headers <- struct{}{}
				return
			}
			defer resp.Body.Close()
			headers <- struct{}{}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			bodies <- b
		}()
	}
	return headers, bodies, errs
}

// TestHerdOneFetch: 1000 concurrent requests for one uncached segment reach
// the origin once, through one node and through three sharing the key
// space, and all get the whole body, streamed while it arrived.
func TestHerdOneFetch(t *testing.T) {
	const n = 1000
	const path = "/live/s/e1/v0/7.m4s"
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			body := randomBody(250 << 10)
			release := make(chan struct{})
			origin := newStubOrigin(t, gated(body, release))
			bases := startNodes(t, nodes, Config{Origins: []string{origin.URL}})

			headers, bodies, errs := herd(t, newClient(), bases, path, n)
			for range n {
				<-headers // every request is now reading the same fill
			}
			close(release)
			for range n {
				select {
				case b := <-bodies:
					if !bytes.Equal(b, body) {
						t.Fatalf("a body of %d bytes differs from the origin's %d", len(b), len(body))
					}
				case err := <-errs:
					t.Fatal(err)
				}
			}
			if got := origin.count(path); got != 1 {
				t.Errorf("origin saw %d requests for %s, want 1", got, path)
			}
		})
	}
}

// startNodes runs n PoP nodes sharing one key space and returns their URLs.
func startNodes(t *testing.T, n int, cfg Config) []string {
	t.Helper()
	if n == 1 {
		_, base := startPoP(t, cfg)
		return []string{base}
	}
	var lns []net.Listener
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		urls = append(urls, "http://"+ln.Addr().String())
	}
	for i, ln := range lns {
		c := cfg
		c.Peers, c.Self = urls, urls[i]
		servePoP(t, c, ln)
	}
	return urls
}

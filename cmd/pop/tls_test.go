package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golivestream/live/internal/proctest"
	"github.com/golivestream/live/internal/tlsfile"
)

// TestTLS runs a pop process with -tls-cert/-tls-key: players get HTTP/2
// over TLS, concurrent streams for one uncached segment share one origin
// fetch and read it while it arrives, and an origin failing mid-body
// resets every stream instead of ending it cleanly.
func TestTLS(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := tlsfile.WriteSelfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 200<<10)
	rand.Read(body)
	// The origin holds each path's second half until its channel is closed.
	release := map[string]chan struct{}{"/live/s/e1/v0/1.m4s": make(chan struct{}), "/live/s/e1/v0/broken.m4s": make(chan struct{})}
	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".m4s") {
			return // health checks
		}
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release[r.URL.Path]:
		case <-r.Context().Done():
			return
		}
		if strings.HasSuffix(r.URL.Path, "/broken.m4s") {
			panic(http.ErrAbortHandler) // the origin dies mid-body
		}
		w.Write(body[len(body)/2:])
	}))
	defer origin.Close()

	_, addr := startProcess(t, bin, "-http", "127.0.0.1:0", "-origin", origin.URL, "-tls-cert", certFile, "-tls-key", keyFile)
	client, err := tlsfile.Client(certFile)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + addr

	for _, tc := range []struct {
		path   string
		broken bool
	}{{"/live/s/e1/v0/1.m4s", false}, {"/live/s/e1/v0/broken.m4s", true}} {
		const n = 50
		fetches.Store(0)
		type result struct {
			proto string
			body  []byte
			err   error
		}
		headers, results := make(chan struct{}, n), make(chan result, n)
		for range n {
			go func() {
				resp, err := client.Get(base + tc.path)
				headers <- struct{}{}
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				results <- result{resp.Proto, b, err}
			}()
		}
		for range n {
			<-headers // every stream is reading the same fill
		}
		close(release[tc.path])
		for range n {
			r := <-results
			switch {
			case r.proto != "" && r.proto != "HTTP/2.0":
				t.Fatalf("%s: protocol %s, want HTTP/2.0", tc.path, r.proto)
			case tc.broken && r.err == nil:
				t.Fatalf("%s: a clean body of %d bytes from an origin that died mid-body", tc.path, len(r.body))
			case !tc.broken && (r.err != nil || !bytes.Equal(r.body, body)):
				t.Fatalf("%s: %d bytes, error %v", tc.path, len(r.body), r.err)
			}
		}
		if got := fetches.Load(); got != 1 {
			t.Errorf("%s: the origin saw %d fetches for %d streams, want 1", tc.path, got, n)
		}
	}
}

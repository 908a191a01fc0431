package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golivestream/live/internal/proctest"
	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/internal/tlstest"
)

// TestTLS runs a pop process with -https, -tls-cert and -tls-key beside
// -http: players get HTTP/2 over TLS, concurrent streams for one uncached
// segment share one origin fetch and read it while it arrives, an origin
// failing mid-body resets every stream instead of ending it cleanly, and
// the plain HTTP port serves the same cache.
func TestTLS(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	certFile, keyFile := tlstest.Files(t)
	body := make([]byte, 200<<10)
	rand.Read(body)
	// The origin holds each path's second half until its channel is closed.
	release := map[string]chan struct{}{"/live/s/e1/v0/1.m4s": make(chan struct{}), "/live/s/e1/v0/2.m4s": make(chan struct{})}
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
		if strings.HasSuffix(r.URL.Path, "/2.m4s") {
			panic(http.ErrAbortHandler) // the origin dies mid-body
		}
		w.Write(body[len(body)/2:])
	}))
	defer origin.Close()

	p := proctest.Start(t, bin, 2, "-http", "127.0.0.1:0", "-https", "127.0.0.1:0", "-origin", origin.URL, "-tls-cert", certFile, "-tls-key", keyFile)
	var plain, base string
	for i, scheme := range []string{"http://", "https://"} {
		f := strings.Fields(p.Stdout[i])
		if len(f) < 4 || f[1] != "serving" || !strings.HasPrefix(f[3], scheme) {
			t.Fatalf("line %d: %q, want pop: serving on %s…", i, p.Stdout[i], scheme)
		}
		plain, base = base, f[3]
	}
	client, err := tlsfile.Client(certFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path   string
		broken bool
	}{{"/live/s/e1/v0/1.m4s", false}, {"/live/s/e1/v0/2.m4s", true}} {
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

	// The plain port serves the segment cached through the HTTPS one.
	resp, err := http.Get(plain + "/live/s/e1/v0/1.m4s")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("plain HTTP: %d bytes, error %v", len(got), err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("plain HTTP fetched the cached segment again: %d origin fetches", n)
	}
}

// TestTLSFlags: -https without a certificate, or a certificate without
// -https (it used to make -http HTTPS), stops the pop at start with a
// usage error rather than serving something else than asked.
func TestTLSFlags(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	certFile, keyFile := tlstest.Files(t)
	for _, args := range [][]string{
		{"-https", "127.0.0.1:0"},
		{"-tls-cert", certFile, "-tls-key", keyFile},
	} {
		cmd := exec.Command(bin, append([]string{"-http", "127.0.0.1:0", "-origin", "http://127.0.0.1:9"}, args...)...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "certificate") {
			t.Errorf("%v: exit %v, output %q; want exit status 2 and a usage error", args, err, out)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestThreeProcessesOneFetch runs three real pop processes sharing one key
// space in front of a slow origin: 1000 concurrent requests for one
// uncached segment, spread over the three, reach the origin once and all
// get the whole body.
func TestThreeProcessesOneFetch(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pop")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	body := make([]byte, 250<<10)
	rand.Read(body)
	release := make(chan struct{})
	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".m4s") {
			return // health checks, stream list
		}
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(body[len(body)/2:])
	}))
	defer origin.Close()

	// Three free loopback ports.
	var peers []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, "http://"+ln.Addr().String())
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, self := range peers {
		cmd := exec.CommandContext(ctx, bin, "-http", strings.TrimPrefix(self, "http://"),
			"-origin", origin.URL, "-peers", strings.Join(peers, ","), "-self", self)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
	for _, p := range peers {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := client.Get(p + "/healthz")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start: %v", p, err)
			}
			time.Sleep(50 * time.Millisecond) // another process is starting; nothing to wait on
		}
	}

	const n = 1000
	const path = "/live/s/e1/v0/3.m4s"
	headers, results := make(chan struct{}, n), make(chan error, n)
	for i := range n {
		go func() {
			resp, err := client.Get(peers[i%3] + path)
			headers <- struct{}{}
			if err != nil {
				results <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err == nil && !bytes.Equal(got, body) {
				err = io.ErrUnexpectedEOF
			}
			results <- err
		}()
	}
	for range n {
		<-headers // every request is now reading the shared fill
	}
	close(release)
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if got := fetches.Load(); got != 1 {
		t.Errorf("the origin saw %d fetches from three pop processes, want 1", got)
	}
}

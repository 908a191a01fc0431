package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stubOrigin answers the PoPs under test and counts what reaches it.
type stubOrigin struct {
	delay    time.Duration
	segment  []byte
	playlist []byte

	mu sync.Mutex
	// counts is the number of requests per path; guarded by mu.
	counts map[string]int
}

// runOrigin serves until SIGINT or SIGTERM, then prints its counts.
func runOrigin(listen string, delay time.Duration, segBytes, plBytes int) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		ln.Close()
		return fmt.Errorf("origin: %s is not a loopback address", listen)
	}
	seg := make([]byte, segBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range seg {
		seg[i] = byte(rng.Uint32())
	}
	o := &stubOrigin{delay: delay, segment: seg, playlist: makePlaylist(plBytes), counts: map[string]int{}}
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Printf("origin: serving on %s (segments %d bytes after %s, playlists %d bytes)\n", ln.Addr(), segBytes, delay, len(o.playlist))
	select {
	case err = <-done:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		cancel()
	}
	o.printCounts()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// makePlaylist returns an HLS media playlist of exactly size bytes (padded
// with a comment line). Its segments live under /live/tp/, apart from the
// herd's paths, since a PoP may prefetch what a playlist lists.
func makePlaylist(size int) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	for i := 100; i < 106; i++ {
		fmt.Fprintf(&b, "#EXTINF:2.000,\nseg-%d.m4s\n", i)
	}
	const pad = "#PAD:"
	if need := size - b.Len() - len(pad) - 1; need >= 0 {
		b.WriteString(pad + strings.Repeat("x", need) + "\n")
	}
	return []byte(b.String())
}

func (o *stubOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		w.Write([]byte("ok\n"))
		return
	case p == "/count":
		o.serveCount(w, r)
		return
	case !strings.HasPrefix(p, "/live/") || (r.Method != http.MethodGet && r.Method != http.MethodHead):
		http.NotFound(w, r)
		return
	}
	o.mu.Lock()
	o.counts[p]++
	o.mu.Unlock()
	h := w.Header()
	if strings.HasSuffix(p, ".m3u8") {
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Length", strconv.Itoa(len(o.playlist)))
		w.Write(o.playlist)
		return
	}
	// Headers and body only after the delay, as an origin still producing
	// the segment would answer.
	t := time.NewTimer(o.delay)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		return
	}
	h.Set("Content-Type", "video/iso.segment")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(o.segment)))
	w.Write(o.segment)
}

// serveCount answers /count?path=P with P's count, and /count with every
// path's count as JSON.
func (o *stubOrigin) serveCount(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	if p := r.URL.Query().Get("path"); p != "" {
		fmt.Fprintf(w, "%d\n", o.counts[p])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(o.counts)
}

// printCounts prints how many paths were asked for how many times.
func (o *stubOrigin) printCounts() {
	o.mu.Lock()
	defer o.mu.Unlock()
	hist := map[int]int{}
	total := 0
	for _, c := range o.counts {
		hist[c]++
		total += c
	}
	var ks []int
	for k := range hist {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	fmt.Printf("origin: %d requests for %d paths;", total, len(o.counts))
	for _, k := range ks {
		fmt.Printf(" %d path(s) asked %d time(s);", hist[k], k)
	}
	fmt.Println()
}

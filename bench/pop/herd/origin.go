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
	delay time.Duration
	// pieces is how a segment leaves: 0 for headers and whole body after
	// delay; n > 0 for headers with the first of n equal pieces after
	// delay/n and the last at delay, as from an origin far away (a TCP
	// transfer over a long round trip) or one streaming a segment as it
	// is produced.
	pieces   int
	segment  []byte
	playlist []byte
	// private starts the names of the streams that need a playback token
	// (the X-Live-Access header, #23); empty for none.
	private string

	mu sync.Mutex
	// counts is the number of requests per path; guarded by mu.
	counts map[string]int
}

// runOrigin serves until SIGINT or SIGTERM, then prints its counts.
func runOrigin(listen string, delay time.Duration, pieces, segBytes, plBytes int, private string) error {
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
	if pieces < 0 || pieces > segBytes {
		ln.Close()
		return fmt.Errorf("origin: -pieces must be from 0 to the segment size, not %d", pieces)
	}
	o := &stubOrigin{delay: delay, pieces: pieces, segment: seg, playlist: makePlaylist(plBytes), private: private, counts: map[string]int{}}
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	how := "after " + delay.String()
	if pieces > 0 {
		how = fmt.Sprintf("in %d pieces over %s", pieces, delay)
	}
	fmt.Printf("origin: serving on %s (segments %d bytes %s, playlists %d bytes)\n", ln.Addr(), segBytes, how, len(o.playlist))
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
// with a comment line). Its segments live in the throughput phase's
// streams (tp-SYSTEM), apart from the herd's, since a PoP may prefetch
// what a playlist lists.
func makePlaylist(size int) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	for i := 100; i < 106; i++ {
		fmt.Fprintf(&b, "#EXTINF:2.000,\n%d.m4s\n", i)
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
	if o.private != "" && strings.HasPrefix(p, "/live/"+o.private) {
		h.Set("X-Live-Access", "token")
	}
	if strings.HasSuffix(p, ".m3u8") {
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Length", strconv.Itoa(len(o.playlist)))
		w.Write(o.playlist)
		return
	}
	h.Set("Content-Type", "video/iso.segment")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(o.segment)))
	o.sendSegment(w, r)
}

// sendSegment writes the segment's headers and body by o.delay: all of it
// at the end, or in o.pieces even pieces over the delay. It stops when the
// client leaves.
func (o *stubOrigin) sendSegment(w http.ResponseWriter, r *http.Request) {
	pieces := max(o.pieces, 1)
	start := time.Now()
	t := time.NewTimer(o.delay / time.Duration(pieces))
	defer t.Stop()
	rc := http.NewResponseController(w)
	for i := range pieces {
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		from, to := len(o.segment)*i/pieces, len(o.segment)*(i+1)/pieces
		if _, err := w.Write(o.segment[from:to]); err != nil {
			return
		}
		if i+1 < pieces {
			rc.Flush()
			t.Reset(time.Until(start.Add(o.delay * time.Duration(i+2) / time.Duration(pieces))))
		}
	}
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

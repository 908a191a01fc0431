package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

// countingProxy forwards to an origin and counts the requests per path.
type countingProxy struct {
	mu     sync.Mutex
	counts map[string]int
	rp     *httputil.ReverseProxy
}

func (c *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.counts[r.URL.Path]++
	c.mu.Unlock()
	c.rp.ServeHTTP(w, r)
}

func (c *countingProxy) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// serveHTTP runs h on 127.0.0.1:0 until the test ends and returns its URL.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// TestStreamThroughPoP publishes with ffmpeg, reads HLS through a 3-node
// PoP with ffprobe (and the DASH manifest too), and checks that the origin
// saw exactly one request per segment per rendition.
func TestStreamThroughPoP(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	target, _ := url.Parse(a.origin)
	counter := &countingProxy{counts: map[string]int{}, rp: httputil.NewSingleHostReverseProxy(target)}
	upstream := serveHTTP(t, counter)

	// Three PoP nodes sharing one key space.
	var lns []net.Listener
	var peers []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		peers = append(peers, "http://"+ln.Addr().String())
	}
	for i, ln := range lns {
		node, err := pop.New(pop.Config{Origins: []string{upstream}, Peers: peers, Self: peers[i]})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: node}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { srv.Serve(ln); done <- struct{}{} }()
		go func() { node.Run(ctx); done <- struct{}{} }()
		t.Cleanup(func() { srv.Close(); cancel(); <-done; <-done })
	}

	const seconds = 6
	out, err := runCmd(context.Background(), time.Minute, ffmpeg,
		ffmpegSource(a.rtmp+"viapop", seconds, append(append([]string{}, x264GOP1s...), "-bf", "2", "-c:a", "aac")...)...)
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	a.waitEnded(t, "viapop", 15*time.Second)

	// Two players on different nodes: one HLS, one DASH.
	video, audio := probe(t, ffprobe, peers[0]+"/live/viapop/index.m3u8")
	if len(video) != seconds*30 || len(audio) < seconds*48000/1024-1 {
		t.Errorf("through the PoP: %d video and %d audio packets, want %d and about %d",
			len(video), len(audio), seconds*30, seconds*48000/1024)
	}
	dv, _ := probe(t, ffprobe, peers[1]+"/live/viapop/manifest.mpd")
	if len(dv) != seconds*30 {
		t.Errorf("DASH through the PoP: %d video packets, want %d", len(dv), seconds*30)
	}

	counts := counter.snapshot()
	segments := map[string]int{}
	for path, n := range counts {
		if strings.HasSuffix(path, ".m4s") || strings.HasSuffix(path, "init.mp4") {
			segments[path] = n
			if n != 1 {
				t.Errorf("origin saw %d requests for %s, want 1", n, path)
			}
		}
	}
	// 6 s of 1-s segments (plus init) for video and audio, read by both players.
	if len(segments) < 2*(seconds+1) {
		t.Errorf("origin saw %d distinct segments, want at least %d: %v", len(segments), 2*(seconds+1), segments)
	}
}

// TestPrefetchStreamed: a player's playlist refresh through the PoP makes
// it prefetch the next segment, which the origin streams while producing
// it; once listed, that segment is a hit at the PoP, with its length and
// the origin's bytes.
func TestPrefetchStreamed(t *testing.T) {
	a := startApp(t, Config{Demo: true, Origin: origin.Config{Window: 10 * time.Second}, PoP: &pop.Config{}})
	a.waitLive(t, DemoStream, 15*time.Second)
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, a.base+"/live/demo/index.m3u8")); err != nil {
		t.Fatal(err)
	}
	media := a.base + "/live/demo/" + mv.Variants[0].URI
	var pl playlist.Media
	if err := pl.Unmarshal(mustGet(t, media)); err != nil {
		t.Fatal(err)
	}
	next := pl.MediaSequence + len(pl.Segments) // not listed yet: prefetched
	waitFor(t, 10*time.Second, "the origin to stream a segment", func() bool {
		return scrapeValue(mustGet(t, a.base+"/metrics"), "live_origin_segments_streamed_total") > 0
	})
	waitFor(t, 10*time.Second, fmt.Sprintf("segment %d to be listed", next), func() bool {
		var p playlist.Media
		return p.Unmarshal(mustGet(t, media)) == nil && p.MediaSequence+len(p.Segments) > next
	})
	seg := strings.TrimSuffix(media, "index.m3u8") + fmt.Sprintf("%d.m4s", next)
	want := mustGet(t, a.origin+strings.TrimPrefix(seg, a.base))
	// The first request may still join the prefetch's last bytes; the
	// second is served from the cache.
	for i, cached := range [][]string{{"hit", "coalesced"}, {"hit"}} {
		resp, err := http.Get(seg)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("segment %d, request %d: %v, %d bytes (%v); the origin has %d", next, i, resp.Status, len(body), err, len(want))
		}
		x := resp.Header.Get("X-Cache")
		if !slices.Contains(cached, x) || x == "hit" && resp.ContentLength != int64(len(want)) {
			t.Errorf("segment %d, request %d: X-Cache %q, length %d; want one of %q (prefetched), a hit with length %d",
				next, i, x, resp.ContentLength, cached, len(want))
		}
	}
}

// scrapeValue returns the value of the unlabelled sample name in a
// Prometheus text exposition, or -1 if it has none.
func scrapeValue(exposition []byte, name string) float64 {
	for line := range strings.SplitSeq(string(exposition), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

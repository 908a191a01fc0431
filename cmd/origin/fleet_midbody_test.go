package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/internal/proctest"
)

// midBodyStream is the stream TestFleetKillMidBody publishes: 8-s
// segments of about 250 KB (250 kb/s), so that a segment is being
// packaged long enough for 1000 requests to reach the PoP, under the race
// detector too.
const midBodyStream = "midbody"

// TestFleetKillMidBody: 1000 requests wait at a PoP node for a segment
// of about 250 KB while its primary origin packages it and the PoP
// streams it to them; the primary is killed (SIGKILL) when half of it
// has been sent. Every request gets one complete body, byte for byte the
// segment as the backup origin made it, and the PoP counts a fill
// resumed from the backup.
func TestFleetKillMidBody(t *testing.T) {
	const waiters = 1000
	f := startFleet(t, fleetConfig{members: 1, seconds: 60})
	publishMidBody(t, f)
	r := awaitStreamRoute(t, f.view, midBodyStream)
	primary, backup := f.origin(t, r.Primary.ID), r.Backup.PublicURL
	pop := f.popURLs[0]

	// The video rendition's media playlist, through the PoP, so that it
	// knows the segments listed, once the stream has its first segment.
	var mv playlist.Multivariant
	if err := mv.Unmarshal(awaitGet(t, pop+"/live/"+midBodyStream+"/index.m3u8", 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(mv.Variants) == 0 {
		t.Fatal("no variant")
	}
	dir := pop + "/live/" + midBodyStream + "/" + mv.Variants[0].URI[:strings.LastIndexByte(mv.Variants[0].URI, '/')+1]

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: waiters}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	first := lastSegment(t, dir)
	want := len(mustGet(t, dir+first.URI)) // about the next one's size

	// A segment is being packaged from the moment the one before it is
	// listed, for a segment duration. If the machine was too slow for
	// 1000 requests to get their headers in that time, try the next one.
	var sent body
	next := ""
	for attempt := 1; ; attempt++ {
		last := awaitNewSegment(t, dir, first.URI)
		n, err := strconv.Atoi(strings.TrimSuffix(last.URI, ".m4s"))
		if err != nil {
			t.Fatalf("segment URI %q: %v", last.URI, err)
		}
		next = fmt.Sprintf("%d.m4s", n+1)
		t.Logf("%d requests for %s, being packaged (about %d bytes)", waiters, next, want)
		var ok bool
		if sent, ok = killMidBody(t, client, waiters, dir+next, want, primary); ok {
			break
		}
		if attempt == 3 {
			t.Fatalf("%s: in 3 segments in a row, the segment was complete before %d requests got their headers: no mid-body kill possible", dir, waiters)
		}
		t.Logf("%s was complete before %d requests got their headers; the next segment", next, waiters)
		first = last
	}
	segment := mustGet(t, backup+strings.TrimPrefix(dir, pop)+next)
	if sent != (body{sha256.Sum256(segment), int64(len(segment))}) {
		t.Fatalf("the bodies (%d bytes) are not the backup's segment (%d bytes)", sent.size, len(segment))
	}
	resumed := 0.0
	for _, u := range f.popURLs {
		resumed += metricSum(t, u+"/metrics", `live_pop_failovers_total{reason="resume"}`)
	}
	if resumed == 0 {
		t.Errorf("no PoP node resumed a fill from the backup: %s was killed after the body was complete", primary.id)
	}
	t.Logf("%d bodies of %d bytes, all the backup's; fills resumed: %v", waiters, len(segment), resumed)
}

// killMidBody sends n requests for url, a segment being packaged; once
// all have their headers and the first has read half of want bytes, it
// kills primary. It returns the SHA-256 and size of the body every
// request got, all equal, or false if the segment was complete before
// all n had their headers. The bodies are hashed as they come, not kept:
// 1000 copies of a segment would cost the test's process more than the
// PoP's.
func killMidBody(t *testing.T, client *http.Client, n int, url string, want int, primary *originProc) (body, bool) {
	t.Helper()
	type result struct {
		body
		err error
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	headers := make(chan struct{}, n)
	results := make(chan result, n)
	half := make(chan struct{}) // closed when request 0 has read half a segment
	began := time.Now()
	for i := range n {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			headers <- struct{}{}
			if resp.StatusCode != http.StatusOK {
				results <- result{err: fmt.Errorf("status %d", resp.StatusCode)}
				return
			}
			h := sha256.New()
			w := &halfWriter{w: h, at: int64(want / 2)}
			if i == 0 {
				w.reached = half
			}
			size, err := io.Copy(w, resp.Body)
			results <- result{body{[32]byte(h.Sum(nil)), size}, err}
		}()
	}
	// collect waits for k requests' results (after ctx's cancel, when the
	// attempt is given up).
	collect := func(k int) []result {
		var rs []result
		for range k {
			rs = append(rs, <-results)
		}
		return rs
	}
	for got := 0; got < n; {
		select {
		case <-headers:
			got++
			continue
		default:
		}
		select {
		case <-headers:
			got++
		case r := <-results:
			if r.err != nil {
				t.Fatalf("a request failed before its headers: %v", r.err)
			}
			cancel()
			collect(n - 1)
			t.Logf("%d of %d requests had their headers when the segment was complete, %v after the first was sent", got, n, time.Since(began))
			return body{}, false
		case <-time.After(30 * time.Second):
			t.Fatal("not every request got its headers in 30 s")
		}
	}
	t.Logf("%d requests had their headers %v after the first was sent", n, time.Since(began))
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("half a segment not read in 30 s")
	}
	if err := primary.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed with half of the segment sent", primary.id)
	var first body
	for i, r := range collect(n) {
		if r.err != nil {
			t.Fatalf("a request failed: %v (%d bytes)", r.err, r.size)
		}
		if i == 0 {
			first = r.body
		} else if r.body != first {
			t.Fatalf("bodies differ: %d bytes and %d", r.size, first.size)
		}
	}
	return first, true
}

// body is what killMidBody keeps of a response body.
type body struct {
	sum  [32]byte // SHA-256
	size int64
}

// halfWriter writes to w, and closes reached (if not nil) once at bytes
// have been written.
type halfWriter struct {
	w       io.Writer
	at, n   int64
	reached chan struct{}
}

func (h *halfWriter) Write(p []byte) (int, error) {
	if h.reached != nil && h.n < h.at && h.n+int64(len(p)) >= h.at {
		close(h.reached)
	}
	h.n += int64(len(p))
	return h.w.Write(p)
}

// awaitNewSegment returns the last segment of the media playlist in dir
// once it is another than after.
func awaitNewSegment(t *testing.T, dir, after string) *playlist.MediaSegment {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if last := lastSegment(t, dir); last.URI != after {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no segment after %s in 20 s", after)
		}
		time.Sleep(50 * time.Millisecond) // the stream grows in real time: nothing to await but its playlist
	}
}

// publishMidBody publishes midBodyStream to both origins of f, one
// encoding pushed to each by ffmpeg's tee muxer, at a constant 250 kb/s
// with a keyframe every 8 s, until the test ends.
func publishMidBody(t *testing.T, f *fleet) {
	t.Helper()
	var outs []string
	for _, o := range f.origins {
		outs = append(outs, "[f=flv:onfail=ignore]"+o.rtmpURL()+"/"+midBodyStream)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pub := exec.CommandContext(ctx, f.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=30:duration=%d", f.seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "250k", "-minrate", "250k", "-maxrate", "250k", "-bufsize", "125k",
		"-x264-params", "nal-hrd=cbr", "-g", "240", "-keyint_min", "240", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
		"-map", "0:v", "-flags", "+global_header", "-f", "tee", strings.Join(outs, "|"))
	out := &proctest.SyncBuffer{}
	pub.Stdout, pub.Stderr = out, out
	if err := pub.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		pub.Wait()
		if t.Failed() {
			t.Logf("ffmpeg (%s) printed:\n%s", midBodyStream, tail(out.String(), 20))
		}
	})
}

// awaitStreamRoute waits until the directory lists stream on a primary
// and a backup.
func awaitStreamRoute(t *testing.T, v *directory.View, stream string) directory.Route {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		changed := v.Changed()
		r, ok := v.Snapshot().Route(stream)
		if ok && r.Backup.ID != "" {
			return r
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("route of %s: %+v (%v)", stream, r, ok)
		}
	}
}

// lastSegment returns the last segment of the media playlist in dir
// (index.m3u8), once it lists one.
func lastSegment(t *testing.T, dir string) *playlist.MediaSegment {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var pl playlist.Media
		if err := pl.Unmarshal(mustGet(t, dir+"index.m3u8")); err != nil {
			t.Fatal(err)
		}
		if len(pl.Segments) > 0 {
			return pl.Segments[len(pl.Segments)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%sindex.m3u8 lists no segment", dir)
		}
		time.Sleep(100 * time.Millisecond) // nothing to await but the stream's first segment
	}
}

// awaitGet returns the body of the first 200 answer to a GET of url, which
// must come within timeout; a 404 is asked again.
func awaitGet(t *testing.T, url string, timeout time.Duration) []byte {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		code, body := httpGet(t, url)
		switch {
		case code == http.StatusOK:
			return []byte(body)
		case code != http.StatusNotFound || time.Now().After(deadline):
			t.Fatalf("%s: %d %q", url, code, body)
		}
		time.Sleep(100 * time.Millisecond) // nothing to await but the stream's first segment
	}
}

// mustGet returns the body of a 200 answer to a GET of url.
func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %q", url, code, body)
	}
	return []byte(body)
}

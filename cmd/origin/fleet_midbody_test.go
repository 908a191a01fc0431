package main

import (
	"bytes"
	"context"
	"errors"
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

// midBodyStream is the stream TestFleetKillMidBody publishes: 4-s
// segments of about 250 KB (500 kb/s), so that a segment is being
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
	// knows the segments listed.
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, pop+"/live/"+midBodyStream+"/index.m3u8")); err != nil {
		t.Fatal(err)
	}
	if len(mv.Variants) == 0 {
		t.Fatal("no variant")
	}
	dir := pop + "/live/" + midBodyStream + "/" + mv.Variants[0].URI[:strings.LastIndexByte(mv.Variants[0].URI, '/')+1]
	// Wait for a new segment to be listed: the next one is then being
	// packaged, for a segment duration.
	first := lastSegment(t, dir)
	var last *playlist.MediaSegment
	for deadline := time.Now().Add(20 * time.Second); ; {
		if last = lastSegment(t, dir); last.URI != first.URI {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no segment after %s in 20 s", first.URI)
		}
		time.Sleep(50 * time.Millisecond) // the stream grows in real time: nothing to await but its playlist
	}
	n, err := strconv.Atoi(strings.TrimSuffix(last.URI, ".m4s"))
	if err != nil {
		t.Fatalf("segment URI %q: %v", last.URI, err)
	}
	want := len(mustGet(t, dir+last.URI)) // about the next one's size
	next := fmt.Sprintf("%d.m4s", n+1)
	t.Logf("segment %s: %d bytes; %d requests for %s, being packaged", last.URI, want, waiters, next)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: waiters}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	type result struct {
		body []byte
		err  error
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	headers := make(chan struct{}, waiters)
	results := make(chan result, waiters)
	half := make(chan struct{}) // closed when request 0 has read half a segment
	for i := range waiters {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dir+next, nil)
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
			if i > 0 {
				body, err := io.ReadAll(resp.Body)
				results <- result{body, err}
				return
			}
			var body []byte
			buf := make([]byte, 4096)
			for {
				k, err := resp.Body.Read(buf)
				if len(body) < want/2 && len(body)+k >= want/2 {
					close(half)
				}
				body = append(body, buf[:k]...)
				if err != nil {
					if errors.Is(err, io.EOF) {
						err = nil
					}
					results <- result{body, err}
					return
				}
			}
		}()
	}
	for range waiters {
		select {
		case <-headers:
		case r := <-results:
			if r.err == nil {
				t.Fatalf("%s was complete before 1000 requests got their headers: no mid-body kill possible", next)
			}
			t.Fatalf("a request failed before its headers: %v", r.err)
		case <-time.After(30 * time.Second):
			t.Fatal("not every request got its headers in 30 s")
		}
	}
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("half a segment not read in 30 s")
	}
	if err := primary.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed with half of %s sent", primary.id, next)

	var bodies [][]byte
	for range waiters {
		r := <-results
		if r.err != nil {
			t.Fatalf("a request failed: %v (%d bytes)", r.err, len(r.body))
		}
		bodies = append(bodies, r.body)
	}
	segment := mustGet(t, backup+strings.TrimPrefix(dir, pop)+next)
	for _, b := range bodies {
		if !bytes.Equal(b, segment) {
			t.Fatalf("a body of %d bytes; the backup's segment has %d", len(b), len(segment))
		}
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

// publishMidBody publishes midBodyStream to both origins of f, one
// encoding pushed to each by ffmpeg's tee muxer, at a constant 500 kb/s
// with a keyframe every 4 s, until the test ends.
func publishMidBody(t *testing.T, f *fleet) {
	t.Helper()
	var outs []string
	for _, o := range f.origins {
		outs = append(outs, "[f=flv:onfail=ignore]"+o.rtmpURL()+"/"+midBodyStream)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pub := exec.CommandContext(ctx, f.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=30:duration=%d", f.seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k", "-minrate", "500k", "-maxrate", "500k", "-bufsize", "250k",
		"-x264-params", "nal-hrd=cbr", "-g", "120", "-keyint_min", "120", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
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

// mustGet returns the body of a 200 answer to a GET of url.
func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %q", url, code, body)
	}
	return []byte(body)
}

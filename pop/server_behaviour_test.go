package pop

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientLeavesMidTransfer: the first client hanging up while the body
// arrives does not hurt the others, nor stop the fill they share.
func TestClientLeavesMidTransfer(t *testing.T) {
	const path = "/live/s/e1/v0/1.m4s"
	body := randomBody(200 << 10)
	release := make(chan struct{})
	origin := newStubOrigin(t, gated(body, release))
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()

	// The first client reads a little and leaves.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	first, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(first.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	headers, bodies, errs := herd(t, c, []string{base}, path, 10)
	for range 10 {
		<-headers
	}
	cancel()
	first.Body.Close()
	close(release)
	for range 10 {
		select {
		case b := <-bodies:
			if !bytes.Equal(b, body) {
				t.Fatalf("body of %d bytes, want %d", len(b), len(body))
			}
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if got := origin.count(path); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestOriginDiesMidBody: an upstream failure after the headers reaches
// every waiter as a broken transfer, never a clean short body, and is not
// cached: the next request fetches again.
func TestOriginDiesMidBody(t *testing.T) {
	const path = "/live/s/e1/v0/2.m4s"
	body := randomBody(200 << 10)
	release := make(chan struct{})
	var healthy atomic.Bool
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Write(body)
			return
		}
		half := len(body) / 2
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		<-release
		panic(http.ErrAbortHandler) // the origin dies mid-body
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()

	headers, bodies, errs := herd(t, c, []string{base}, path, 20)
	for range 20 {
		<-headers
	}
	close(release)
	for range 20 {
		select {
		case b := <-bodies:
			t.Fatalf("a waiter got a clean body of %d bytes from a dead origin", len(b))
		case err := <-errs:
			if !strings.Contains(err.Error(), "unexpected EOF") {
				t.Errorf("waiter error %v, want unexpected EOF", err)
			}
		}
	}

	healthy.Store(true)
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the failure: %d bytes, %v", len(got), err)
	}
	if n := origin.count(path); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (the failed body was not cached)", n)
	}
}

// TestCacheBytesBound: a stream of new segments never makes the cache hold
// more than CacheBytes, nor the heap grow with the number of segments.
func TestCacheBytesBound(t *testing.T) {
	const limit = 4 << 20
	const size = 100 << 10
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(bytes.Repeat([]byte{byte(len(r.URL.Path))}, size))
	})
	// 600 segments no manifest listed, from one client: no miss budget.
	s, base := startPoP(t, Config{Origins: []string{origin.URL}, CacheBytes: limit, Shards: 4, MissRate: -1})
	c := newClient()
	filesBefore := bodyFiles(t) // other tests' caches

	var baseline runtime.MemStats
	for i := range 600 {
		resp, err := c.Get(base + "/live/s/e1/v0/" + strconv.Itoa(i) + ".m4s")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			t.Fatalf("segment %d: %d bytes", i, n)
		}
		if got := s.CacheSize(); got > limit {
			t.Fatalf("after %d segments the cache holds %d bytes, above %d", i+1, got, limit)
		}
		if i == 100 {
			runtime.GC()
			runtime.ReadMemStats(&baseline)
		}
	}
	var end runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&end)
	if growth := int64(end.HeapAlloc) - int64(baseline.HeapAlloc); growth > limit {
		t.Errorf("heap grew by %d bytes over 500 segments with a %d-byte cache", growth, limit)
	}
	// Segments' body files (bodyfile_linux.go) are outside the heap:
	// evicted ones are closed, so the cache holds as many as fit.
	if files, most := bodyFiles(t)-filesBefore, limit/(2*size); files > most {
		t.Errorf("%d body files open with a %d-byte cache, at most %d fit", files, limit, most)
	}
}

// TestPlaylistCoalescing: playlist refreshes are coalesced even with
// max-age=0, refresh at the origin's millisecond TTL, and a failed refresh
// is covered by the stale playlist for one more lifetime only.
func TestPlaylistCoalescing(t *testing.T) {
	fail := make(chan struct{})
	var version atomic.Int64
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-fail:
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		default:
		}
		v := version.Add(1)
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		if strings.Contains(r.URL.Path, "zero") {
			w.Header().Set("Cache-Control", "max-age=0")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=1, "+TTLDirective+"=300")
		}
		w.Write([]byte("#EXTM3U\n#v" + strconv.FormatInt(v, 10) + "\n"))
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}, MinTTL: 200 * time.Millisecond})
	c := newClient()

	// max-age=0: a herd still makes one fetch.
	const zero = "/live/zero/index.m3u8"
	headers, bodies, errs := herd(t, c, []string{base}, zero, 200)
	for range 200 {
		<-headers
		select {
		case <-bodies:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if n := origin.count(zero); n != 1 {
		t.Errorf("max-age=0 playlist: %d origin fetches for 200 concurrent requests, want 1", n)
	}

	const pl = "/live/s/index.m3u8"
	get := func() (string, string) {
		resp, err := c.Get(base + pl)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Cache")
	}
	first, _ := get()
	if again, how := get(); again != first || how != "hit" {
		t.Errorf("within the TTL: %q (%s), want the cached %q", again, how, first)
	}
	waitExpiry := time.NewTimer(350 * time.Millisecond) // past the 300 ms TTL
	<-waitExpiry.C
	if fresh, _ := get(); fresh == first {
		t.Errorf("after the TTL the playlist was not refreshed")
	}
	close(fail)
	<-time.After(350 * time.Millisecond)
	if stale, how := get(); how != "stale" || !strings.HasPrefix(stale, "#EXTM3U") {
		t.Errorf("origin failing within one refresh: %q (%s), want the stale playlist", stale, how)
	}
	<-time.After(350 * time.Millisecond)
	resp, err := c.Get(base + pl)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("origin failing past one refresh: status %d, want the origin's 500", resp.StatusCode)
	}
}

// TestRange: a Range request for a cached segment gets 206 with that part,
// an unsatisfiable one 416; while the body still arrives, the whole body.
func TestRange(t *testing.T) {
	const path = "/live/s/e1/v0/3.m4s"
	body := randomBody(50 << 10)
	release := make(chan struct{})
	origin := newStubOrigin(t, gated(body, release))
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})

	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Range", rng)
		return doAll(t, http.DefaultClient, req)
	}

	// The first request starts the fill, whose second half waits for
	// release. A range within the first half is answered while the rest
	// is still to come; one in the second half, and several ranges, once
	// their bytes are in.
	resp, b := get("bytes=0-99")
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 0-99/51200" ||
		resp.Header.Get("Accept-Ranges") != "bytes" || !bytes.Equal(b, body[:100]) {
		t.Fatalf("range while filling: status %d, Content-Range %q, Accept-Ranges %q, %d bytes; want 206, bytes 0-99/51200, bytes, the first 100",
			resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("Accept-Ranges"), len(b))
	}
	type answer struct {
		resp *http.Response
		body []byte
	}
	later := make(chan answer, 2)
	for _, rng := range []string{"bytes=30000-30099", "bytes=0-9,30000-30009"} {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			req.Header.Set("Range", rng)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				later <- answer{}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			later <- answer{resp, b}
		}()
	}
	close(release)
	for range 2 {
		a := <-later
		switch {
		case a.resp == nil:
			t.Error("range while filling: request failed")
		case a.resp.Header.Get("Content-Range") == "bytes 30000-30099/51200":
			if a.resp.StatusCode != http.StatusPartialContent || !bytes.Equal(a.body, body[30000:30100]) {
				t.Errorf("second-half range while filling: status %d, %d bytes", a.resp.StatusCode, len(a.body))
			}
		case strings.HasPrefix(a.resp.Header.Get("Content-Type"), "multipart/byteranges"):
			if a.resp.StatusCode != http.StatusPartialContent || !bytes.Contains(a.body, body[30000:30010]) {
				t.Errorf("two ranges while filling: status %d, %d bytes", a.resp.StatusCode, len(a.body))
			}
		default:
			t.Errorf("range while filling: status %d, Content-Range %q, Content-Type %q",
				a.resp.StatusCode, a.resp.Header.Get("Content-Range"), a.resp.Header.Get("Content-Type"))
		}
	}

	for _, tc := range []struct {
		rng          string
		status       int
		contentRange string
		want         []byte
	}{
		{"bytes=100-199", http.StatusPartialContent, "bytes 100-199/51200", body[100:200]},
		{"bytes=-10", http.StatusPartialContent, "bytes 51190-51199/51200", body[len(body)-10:]},
		{"bytes=51000-", http.StatusPartialContent, "bytes 51000-51199/51200", body[51000:]},
		{"bytes=60000-", http.StatusRequestedRangeNotSatisfiable, "bytes */51200", nil},
	} {
		resp, b := get(tc.rng)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Range") != tc.contentRange {
			t.Errorf("%s: status %d, Content-Range %q; want %d, %q", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), tc.status, tc.contentRange)
		}
		if tc.want != nil && !bytes.Equal(b, tc.want) {
			t.Errorf("%s: %d bytes, not the part asked for", tc.rng, len(b))
		}
		if resp.Header.Get("X-Cache") != "hit" {
			t.Errorf("%s: X-Cache %q, want hit", tc.rng, resp.Header.Get("X-Cache"))
		}
	}
	if got := origin.count(path); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

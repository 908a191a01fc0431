package pop

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fetchAll GETs url and returns status, body and the X-Cache result.
func fetchAll(t *testing.T, c *http.Client, url string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, b := doAll(t, c, req)
	return resp.StatusCode, string(b), resp.Header.Get("X-Cache")
}

// doAll sends req and returns the response and its whole body.
func doAll(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestFailover: with the first origin down, requests are filled by the next.
func TestFailover(t *testing.T) {
	good := newStubOrigin(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write([]byte("segment"))
	})
	dead := newStubOrigin(t, nil)
	deadURL := dead.URL
	dead.Close()
	_, base := startPoP(t, Config{Origins: []string{deadURL, good.URL}})
	code, body, _ := fetchAll(t, newClient(), base+"/live/s/e/v0/1.m4s")
	if code != 200 || body != "segment" {
		t.Fatalf("status %d %q, want the second origin's answer", code, body)
	}
}

// TestNegativeAndErrorCaching: a 404 is cached for NegativeTTL, a 5xx not
// at all.
func TestNegativeAndErrorCaching(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "500.m4s") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		http.Error(w, "segment too far ahead", http.StatusNotFound)
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}, NegativeTTL: 300 * time.Millisecond})
	c := newClient()
	const missing, broken = "/live/s/e/v0/404.m4s", "/live/s/e/v0/500.m4s"
	for range 3 {
		if code, body, _ := fetchAll(t, c, base+missing); code != 404 || !strings.Contains(body, "too far ahead") {
			t.Fatalf("404: status %d %q", code, body)
		}
		if code, _, _ := fetchAll(t, c, base+broken); code != 500 {
			t.Fatalf("500: status %d", code)
		}
	}
	if n := origin.count(missing); n != 1 {
		t.Errorf("404 fetched %d times within its TTL, want 1", n)
	}
	if n := origin.count(broken); n != 3 {
		t.Errorf("500 fetched %d times, want 3 (never cached)", n)
	}
	<-time.After(350 * time.Millisecond)
	fetchAll(t, c, base+missing)
	if n := origin.count(missing); n != 2 {
		t.Errorf("404 fetched %d times after its TTL, want 2", n)
	}
}

// TestPrefetch: a playlist refresh that lists a new segment makes the PoP
// fetch it and the next one before any player asks.
func TestPrefetch(t *testing.T) {
	seen := make(chan string, 16)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Header().Set("Cache-Control", "max-age=1")
			w.Write([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:40\n" +
				"#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.00000,\n40.m4s\n#EXTINF:1.00000,\n41.m4s\n"))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte(r.URL.Path))
	})
	origin.seen = seen
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	fetchAll(t, newClient(), base+"/live/s/e/v0/index.m3u8")

	want := map[string]bool{"/live/s/e/v0/41.m4s": true, "/live/s/e/v0/42.m4s": true}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case p := <-seen:
			delete(want, p)
		case <-deadline:
			t.Fatalf("prefetches not seen: %v", want)
		}
	}
	// The player's request joins the prefetch (in flight or done).
	code, body, how := fetchAll(t, newClient(), base+"/live/s/e/v0/42.m4s")
	if code != 200 || body != "/live/s/e/v0/42.m4s" || how == "miss" {
		t.Errorf("prefetched segment: status %d %q %s, want a hit or a coalesced answer", code, body, how)
	}
	if n := origin.count("/live/s/e/v0/42.m4s"); n != 1 {
		t.Errorf("origin saw %d requests for the prefetched segment, want 1", n)
	}
}

// TestPrefetchMPD: an MPD refresh prefetches the next segments of the
// renditions this PoP's clients watch, not of every rendition listed.
func TestPrefetchMPD(t *testing.T) {
	seen := make(chan string, 64)
	mpd := `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"><Period id="0">
<AdaptationSet contentType="video"><SegmentTemplate media="e/$RepresentationID$/$Number$.m4s" initialization="e/$RepresentationID$/init.mp4" startNumber="40" timescale="90000">
<SegmentTimeline><S t="0" d="90000" r="1"/></SegmentTimeline></SegmentTemplate>
<Representation id="v0" bandwidth="3000000"/><Representation id="v1" bandwidth="1000000"/><Representation id="v2" bandwidth="400000"/>
</AdaptationSet></Period></MPD>`
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".mpd") {
			w.Header().Set("Cache-Control", "max-age=1, live-ttl-ms=50")
			w.Write([]byte(mpd))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte(r.URL.Path))
	})
	origin.seen = seen
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	// A client watches v1 only.
	fetchAll(t, c, base+"/live/s/e/v1/init.mp4")
	fetchAll(t, c, base+"/live/s/e/v1/40.m4s")
	fetchAll(t, c, base+"/live/s/manifest.mpd")

	want := map[string]bool{"/live/s/e/v1/41.m4s": true, "/live/s/e/v1/42.m4s": true}
	var got []string
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case p := <-seen:
			got = append(got, p)
			delete(want, p)
		case <-deadline:
			t.Fatalf("prefetches not seen: %v (origin saw %v)", want, got)
		}
	}
	// Settle: the MPD's prefetches all start together; anything for v0 or
	// v2 would have been asked by now or comes with the next MPD.
	fetchAll(t, c, base+"/live/s/e/v1/42.m4s")
	for _, rid := range []string{"v0", "v2"} {
		for _, n := range []string{"41", "42"} {
			if k := "/live/s/e/" + rid + "/" + n + ".m4s"; origin.count(k) != 0 {
				t.Errorf("%s prefetched, but no client watches %s", k, rid)
			}
		}
	}
}

// TestTiers: a PoP whose origin is another PoP (edge -> shield -> origin)
// needs no change, and the origin still sees one request.
func TestTiers(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte("segment"))
	})
	_, shield := startPoP(t, Config{Origins: []string{origin.URL}})
	_, edge1 := startPoP(t, Config{Origins: []string{shield}})
	_, edge2 := startPoP(t, Config{Origins: []string{shield}})
	c := newClient()
	const path = "/live/s/e/v0/9.m4s"
	for _, edge := range []string{edge1, edge2, edge1} {
		if code, body, _ := fetchAll(t, c, edge+path); code != 200 || body != "segment" {
			t.Fatalf("edge %s: status %d %q", edge, code, body)
		}
	}
	if n := origin.count(path); n != 1 {
		t.Errorf("origin saw %d requests through two edges and a shield, want 1", n)
	}
}

// TestHotReplication: a node keeps a copy of a key owned by another node
// once one fill of it answered HotThreshold requests; a cold key is not
// kept.
func TestHotReplication(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte(r.URL.Path))
	})
	bases := startNodes(t, 2, Config{Origins: []string{origin.URL}, HotThreshold: 3})
	c := newClient()
	// Find a key that node 0 does not own.
	r := newRing(bases, 64)
	var key string
	for i := 0; key == ""; i++ {
		if k := "/live/s/e/v0/" + strconv.Itoa(i) + ".m4s"; r.get(k) != bases[0] {
			key = k
		}
		if i > 1000 {
			t.Fatal("no key owned by node 1")
		}
	}
	// Cold: below the threshold every request goes to the owner.
	for i := range 3 {
		if _, _, how := fetchAll(t, c, bases[0]+key); how == "hit" {
			t.Fatalf("request %d: a cold key was kept at a non-owner", i+1)
		}
	}
	// Hot: the fill that answered the third request was kept.
	if _, _, how := fetchAll(t, c, bases[0]+key); how != "hit" {
		t.Errorf("after 3 requests the key was not replicated at the non-owner: %s", how)
	}
}

// TestForgedHopHeader: a client sending X-Pop-Hop itself to every node does
// not bypass the key's owner: the origin still sees one fetch.
func TestForgedHopHeader(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte("segment"))
	})
	bases := startNodes(t, 3, Config{Origins: []string{origin.URL}})
	const path = "/live/s/e/v0/5.m4s"
	for _, b := range bases {
		req, _ := http.NewRequest(http.MethodGet, b+path, nil)
		req.Header.Set(HopHeader, "http://attacker.example")
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := origin.count(path); n != 1 {
		t.Errorf("origin saw %d fetches with a forged %s header, want 1", n, HopHeader)
	}
}

// TestLengthOfStreamedBody: a body the origin streamed without a length
// (a segment sent while it was produced) is served from the cache with
// its Content-Length.
func TestLengthOfStreamedBody(t *testing.T) {
	body := randomBody(40 << 10)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		for i := 0; i < len(body); i += 10 << 10 {
			w.Write(body[i : i+10<<10])
			w.(http.Flusher).Flush() // chunked, as the origin streams a segment
		}
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	for i, want := range []int64{-1, int64(len(body))} {
		resp, err := c.Get(base + "/live/s/e/v0/5.m4s")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) || resp.ContentLength != want {
			t.Errorf("request %d: %d bytes (%v), length %d; want the body with length %d", i, len(got), err, resp.ContentLength, want)
		}
	}
	if n := origin.count("/live/s/e/v0/5.m4s"); n != 1 {
		t.Errorf("origin asked %d times", n)
	}
}

package pop

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

// vodOrigin serves, for streams "pub" and "priv" (which needs a token):
// a live rendition /live/{s}/e/v0/ listing segments 10 to 19; another,
// /live/{s}/d/v0/, listing 90 to 99, with a DVR playlist from 0; a clip of
// it, /vod/{s}/clips/c1/, whose playlist lists segments 2 to 5 by URIs
// into /live/; a VOD of epoch "old" with a static MPD of 100 segments;
// and every segment.
func vodOrigin(t *testing.T) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		h := w.Header()
		if streamOf(p) == "priv" {
			h.Set(AccessHeader, "token")
		}
		playlist := func(first, last int, prefix string, ended bool) {
			h.Set("Cache-Control", "public, max-age=1, "+TTLDirective+"=500")
			var b strings.Builder
			fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"%sinit.mp4\"\n", first, prefix)
			for n := first; n <= last; n++ {
				fmt.Fprintf(&b, "#EXTINF:1.00000,\n%s%d.m4s\n", prefix, n)
			}
			if ended {
				b.WriteString("#EXT-X-ENDLIST\n")
			}
			w.Write([]byte(b.String()))
		}
		s := streamOf(p)
		switch {
		case strings.HasSuffix(p, "/e/v0/index.m3u8"):
			playlist(10, 19, "", false)
		case strings.HasSuffix(p, "/d/v0/dvr.m3u8"):
			playlist(0, 99, "", false)
		case strings.HasSuffix(p, "/d/v0/index.m3u8"):
			playlist(90, 99, "", false)
		case strings.HasSuffix(p, "/clips/c1/v0/index.m3u8"):
			playlist(2, 5, "../../../../../live/"+s+"/e/v0/", true)
		case strings.HasSuffix(p, "/clips/c1/index.m3u8"):
			h.Set("Cache-Control", "public, max-age=60")
			w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv0/index.m3u8\n"))
		case strings.HasSuffix(p, "/old/manifest.mpd"):
			h.Set("Cache-Control", "public, max-age=60")
			fmt.Fprintf(w, `<?xml version="1.0"?><MPD type="static"><Period><AdaptationSet>`+
				`<Representation id="v0"><SegmentTemplate media="../../../live/%s/old/$RepresentationID$/$Number$.m4s" startNumber="0">`+
				`<SegmentTimeline><S t="0" d="90000" r="99"/></SegmentTimeline></SegmentTemplate></Representation>`+
				`</AdaptationSet></Period></MPD>`, s)
		case strings.HasSuffix(p, ".m4s"):
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Write([]byte("media of " + p))
		default:
			h.Set("Cache-Control", "no-store")
			http.NotFound(w, r)
		}
	})
}

// TestVODThroughPoP: the manifests of VODs and clips, under /vod/, are
// cached like live ones, with the same access rules, and the segments
// they list under /live/ count as known, as do those a DVR playlist
// lists; a clip of a live rendition does not make its later segments
// look too far ahead.
func TestVODThroughPoP(t *testing.T) {
	origin := vodOrigin(t)
	kit := newTokenKit(t)
	s, base := startPoP(t, Config{Origins: []string{origin.URL}, Tokens: kit.v, MissRate: 0.001, MissBurst: 5})
	// awaitWindow waits until the node knows the window of dir up to
	// last: a manifest's windows are noted once its fill completes,
	// which may be after its client has the body.
	awaitWindow := func(dir string, first, last uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			w, ok := s.windows.window(dir, time.Now())
			if ok && w.first == first && w.last == last {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("window of %s: %+v, %v; want %d..%d", dir, w, ok, first, last)
			}
			time.Sleep(time.Millisecond)
		}
	}

	t.Run("cached", func(t *testing.T) {
		c := clientFrom("127.0.0.2")
		for range 3 {
			if code, _, _ := getStatus(t, c, base+"/vod/pub/clips/c1/index.m3u8"); code != 200 {
				t.Fatalf("clip playlist: %d", code)
			}
		}
		if n := origin.count("/vod/pub/clips/c1/index.m3u8"); n != 1 {
			t.Errorf("origin saw the clip playlist %d times, want 1", n)
		}
		_, _, h := getStatus(t, c, base+"/vod/pub/clips/c1/index.m3u8")
		if h.Get("X-Cache") != "hit" {
			t.Errorf("X-Cache %q, want hit", h.Get("X-Cache"))
		}
	})

	t.Run("clip of a live rendition", func(t *testing.T) {
		c := clientFrom("127.0.0.3")
		if code, _, _ := getStatus(t, c, base+"/live/pub/e/v0/index.m3u8"); code != 200 {
			t.Fatalf("live playlist: %d", code)
		}
		awaitWindow("/live/pub/e/v0/", 10, 19)
		if code, _, _ := getStatus(t, c, base+"/vod/pub/clips/c1/v0/index.m3u8"); code != 200 {
			t.Fatalf("clip media playlist: %d", code)
		}
		awaitWindow("/live/pub/e/v0/", 2, 19)
		// The live window (10..19) widened by the clip's (2..5), not
		// replaced: 21 is still in reach, 3 is known.
		for _, n := range []int{21, 3} {
			if code, body, _ := getStatus(t, c, base+"/live/pub/e/v0/"+strconv.Itoa(n)+".m4s"); code != 200 {
				t.Errorf("segment %d after the clip's playlist: %d %s", n, code, body)
			}
		}
	})

	t.Run("static VOD MPD lists known segments", func(t *testing.T) {
		c := clientFrom("127.0.0.4")
		if code, _, _ := getStatus(t, c, base+"/vod/pub/old/manifest.mpd"); code != 200 {
			t.Fatalf("VOD MPD: %d", code)
		}
		awaitWindow("/live/pub/old/v0/", 0, 99)
		// Far more than the miss budget (5): known from the MPD, fetched.
		for n := range 30 {
			if code, _, _ := getStatus(t, c, base+"/live/pub/old/v0/"+strconv.Itoa(n)+".m4s"); code != 200 {
				t.Fatalf("VOD segment %d: %d", n, code)
			}
		}
	})

	t.Run("DVR window", func(t *testing.T) {
		c := clientFrom("127.0.0.6")
		for _, pl := range []string{"dvr.m3u8", "index.m3u8"} { // the live one last
			if code, _, _ := getStatus(t, c, base+"/live/pub/d/v0/"+pl); code != 200 {
				t.Fatalf("%s: %d", pl, code)
			}
		}
		awaitWindow("/live/pub/d/v0/"+dvrDir, 0, 99)
		awaitWindow("/live/pub/d/v0/", 90, 99)
		// Far more than the miss budget (5), far older than the live
		// window: known from the DVR playlist, fetched.
		for n := range 30 {
			if code, _, _ := getStatus(t, c, base+"/live/pub/d/v0/"+strconv.Itoa(n)+".m4s"); code != 200 {
				t.Fatalf("DVR segment %d: %d", n, code)
			}
		}
		if code, _, _ := getStatus(t, c, base+"/live/pub/d/v0/105.m4s"); code != 200 {
			t.Errorf("segment 105, in reach of the live window: refused")
		}
	})

	t.Run("tokens", func(t *testing.T) {
		c := clientFrom("127.0.0.5")
		tok := kit.token(t, access.Claims{Stream: "priv"})
		const mv = "/vod/priv/clips/c1/index.m3u8"
		if code, _, _ := getStatus(t, c, base+"/t/"+tok+mv); code != 200 {
			t.Fatalf("clip of a private stream with a token: %d", code)
		}
		if code, _, _ := getStatus(t, c, base+mv); code != http.StatusUnauthorized {
			t.Errorf("clip of a private stream without a token: %d, want 401", code)
		}
		other := kit.token(t, access.Claims{Stream: "pub"})
		if code, _, _ := getStatus(t, c, base+"/t/"+other+mv); code != http.StatusForbidden {
			t.Errorf("clip of a private stream with another stream's token: %d, want 403", code)
		}
		// The segments the clip's playlist leads to, with the token the
		// relative URIs carry.
		if code, _, _ := getStatus(t, c, base+"/t/"+tok+"/live/priv/e/v0/3.m4s"); code != 200 {
			t.Errorf("segment of the clip with the token: %d", code)
		}
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(base + mv + "?token=" + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/t/"+tok+mv {
			t.Errorf("?token= on a VOD entry: %d Location %q", resp.StatusCode, loc)
		}
	})
}

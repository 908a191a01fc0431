package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/packager"
)

// withChunks gives every segment of r four chunks and r the parts of the
// segment it produces, as the packager would have made them.
func withChunks(r *rendition, inProgress int) {
	for _, e := range r.entries {
		seg := *e.seg
		q := seg.Duration / 4
		size := len(seg.Data) / 4
		seg.Chunks = nil
		for i := range 4 {
			dur := q
			if i == 3 {
				dur = seg.Duration - 3*q
			}
			seg.Chunks = append(seg.Chunks, packager.ChunkInfo{Offset: i * size, Size: size, Start: seg.Start + int64(i)*q, Duration: dur, Independent: i == 0 || !r.info.Video})
		}
		e.seg = &seg
	}
	r.partTarget = partTargetOf(r.entries[0].seg)
	q := r.entries[0].seg.Duration / 4
	for i := range inProgress {
		r.parts = append(r.parts, part{offset: i * 1000, size: 1000, duration: q, independent: i == 0 || !r.info.Video})
	}
}

func llFixture(t *testing.T) *snapshot {
	t.Helper()
	_, snap, _ := fixture(30*time.Second, false)
	withChunks(snap.renditions[0], 2)
	withChunks(snap.renditions[1], 1)
	return snap
}

// TestLowLatencyGolden: the LL-HLS media playlist and its delta update.
func TestLowLatencyGolden(t *testing.T) {
	snap := llFixture(t)
	st, _, _ := fixture(30*time.Second, false)
	checkGolden(t, "ll_v0.m3u8", mediaPlaylist(&st.instance, snap.renditions[0], snap, false))
	checkGolden(t, "ll_v0_delta.m3u8", mediaPlaylist(&st.instance, snap.renditions[0], snap, true))
}

// TestLowLatencyRules checks what RFC 8216bis asks of the LL-HLS tags,
// on the playlists of the fixture's renditions read back with gohlslib.
func TestLowLatencyRules(t *testing.T) {
	snap := llFixture(t)
	st, _, _ := fixture(30*time.Second, false)
	for _, r := range snap.renditions {
		full := parseMedia(t, mediaPlaylist(&st.instance, r, snap, false))
		delta := parseMedia(t, mediaPlaylist(&st.instance, r, snap, true))
		target := time.Duration(full.TargetDuration) * time.Second
		pt := full.PartInf.PartTarget
		for _, tc := range []struct {
			rule string
			ok   bool
		}{
			// 4.4.3.7, 4.4.4.9: every part lasts at most PART-TARGET.
			{"part durations <= PART-TARGET", allParts(full, func(p *playlist.MediaPart) bool { return p.Duration <= pt })},
			// 4.4.3.8: PART-HOLD-BACK at least three part targets.
			{"PART-HOLD-BACK >= 3 x PART-TARGET", *full.ServerControl.PartHoldBack >= 3*pt},
			{"CAN-BLOCK-RELOAD", full.ServerControl.CanBlockReload},
			// 4.4.3.8: the skip boundary at least six target durations.
			{"CAN-SKIP-UNTIL >= 6 x target", *full.ServerControl.CanSkipUntil >= 6*target},
			// 4.4.5.3: the hint is the next part, after the last listed.
			{"hint is the next part", full.PreloadHint.URI == layout.PartPath(r.next, len(r.parts))},
			{"trailing parts of the segment produced", len(full.Parts) == len(r.parts)},
			// 4.4.4.9: no parts on segments more than 3 target durations old.
			{"parts only in the last 3 target durations", partsWithin(full, 3*target)},
			// 4.4.5.4: a report of every other rendition.
			{"rendition reports", len(full.RenditionReport) == len(snap.renditions)-1},
			// 6.2.5.1: the delta skips segments older than the boundary, and
			// lists the same ones after them.
			{"delta skips", delta.Skip != nil && delta.Skip.SkippedSegments+len(delta.Segments) == len(full.Segments) &&
				delta.MediaSequence == full.MediaSequence},
			{"delta keeps the skip boundary", skippedBefore(full, delta.Skip, 6*target)},
		} {
			if !tc.ok {
				t.Errorf("%s: %s", r.id, tc.rule)
			}
		}
		if r.id == "v0" {
			rep := full.RenditionReport[0]
			if rep.URI != "../a0/index.m3u8" || rep.LastMSN != 8 || *rep.LastPart != 0 {
				t.Errorf("v0's report of a0: %+v (LAST-PART %d), want ../a0/index.m3u8 8 0", rep, *rep.LastPart)
			}
		}
	}
}

func parseMedia(t *testing.T, b []byte) *playlist.Media {
	t.Helper()
	var pl playlist.Media
	if err := pl.Unmarshal(b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return &pl
}

func allParts(pl *playlist.Media, ok func(*playlist.MediaPart) bool) bool {
	for _, s := range pl.Segments {
		for _, p := range s.Parts {
			if !ok(p) {
				return false
			}
		}
	}
	for _, p := range pl.Parts {
		if !ok(p) {
			return false
		}
	}
	return true
}

// partsWithin reports whether only segments starting within d of the
// playlist's end list parts.
func partsWithin(pl *playlist.Media, d time.Duration) bool {
	var end time.Duration
	for _, s := range pl.Segments {
		end += s.Duration
	}
	for _, p := range pl.Parts {
		end += p.Duration
	}
	var at time.Duration
	for _, s := range pl.Segments {
		if len(s.Parts) > 0 && end-at > d {
			return false
		}
		at += s.Duration
	}
	return true
}

// skippedBefore reports whether the segments a delta update skipped all
// end more than boundary before the playlist's end.
func skippedBefore(full *playlist.Media, skip *playlist.MediaSkip, boundary time.Duration) bool {
	if skip == nil {
		return false
	}
	var end time.Duration
	for _, s := range full.Segments {
		end += s.Duration
	}
	for _, p := range full.Parts {
		end += p.Duration
	}
	var at time.Duration
	for _, s := range full.Segments[:skip.SkippedSegments] {
		at += s.Duration
	}
	return end-at >= boundary
}

// TestBlockingReload: through HTTP, a live stream's blocking playlist
// reload for a part not produced yet is answered once it is, one too far
// ahead gets 400, a hinted part is held and answered with the bytes the
// segment then has at that place, and a delta update skips segments.
func TestBlockingReload(t *testing.T) {
	srv, err := New(Config{Window: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sess := publishAudio(t, srv, "ll", 48000, 10)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := ts.URL + "/live/ll/" + srv.stream("ll").epoch + "/a0/"
	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	code, body := get(dir + "index.m3u8")
	if code != 200 {
		t.Fatalf("playlist: %d", code)
	}
	pl := parseMedia(t, body)
	if pl.PreloadHint == nil || pl.ServerControl == nil {
		t.Fatalf("no LL-HLS tags:\n%s", body)
	}
	next := uint64(pl.MediaSequence + len(pl.Segments))
	want := len(pl.Parts) // the hinted part

	type answer struct {
		code int
		body []byte
	}
	held, hint := make(chan answer, 1), make(chan answer, 1)
	go func() {
		c, b := get(dir + "index.m3u8?_HLS_msn=" + itoa(next) + "&_HLS_part=" + itoa(uint64(want)))
		held <- answer{c, b}
	}()
	go func() {
		c, b := get(dir + layout.PartPath(next, want))
		hint <- answer{c, b}
	}()
	if c, _ := get(dir + "index.m3u8?_HLS_msn=" + itoa(next+3)); c != http.StatusBadRequest {
		t.Errorf("_HLS_msn three past the last: %d, want 400", c)
	}
	awaitHeld(t, srv, 2, held)        // the blocking reload and the hinted part
	writeAudio(t, sess, 48000, 10, 3) // the part, its segment and more
	a := <-held
	got := parseMedia(t, a.body)
	if a.code != 200 || !holdsPart(got, next, want) {
		t.Fatalf("blocking reload: %d, part %d of %d not listed:\n%s", a.code, want, next, a.body)
	}
	h := <-hint
	seg := srv.stream("ll").snap.Load().rendition("a0").find(next)
	if h.code != 200 || seg == nil {
		t.Fatalf("hinted part: %d; segment %d complete: %v", h.code, next, seg != nil)
	}
	c := seg.seg.Chunks[want]
	if string(h.body) != string(seg.seg.Data[c.Offset:c.Offset+c.Size]) {
		t.Errorf("the hinted part's %d bytes are not chunk %d of segment %d", len(h.body), want, next)
	}
	if _, delta := get(dir + "index.m3u8?_HLS_skip=YES"); !strings.Contains(string(delta), "#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
		t.Errorf("delta update without EXT-X-SKIP:\n%s", delta)
	}
	// A part of a segment that ended with fewer parts is not found.
	if c, _ := get(dir + layout.PartPath(next, len(seg.seg.Chunks))); c != http.StatusNotFound {
		t.Errorf("a part past the segment's last: %d, want 404", c)
	}
}

// awaitHeld waits until the origin holds n requests (its held-requests
// gauge: no event says so, hence the bounded poll), failing if answered
// gets an answer meanwhile: a request answered before what it waits for
// exists.
func awaitHeld[A any](t *testing.T, srv *Server, n float64, answered <-chan A) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); gaugeValue(t, srv.metrics.held) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %v requests held after 10 s", n)
		}
		select {
		case <-answered:
			t.Fatal("a request was answered before what it asked for existed")
		case <-time.After(time.Millisecond):
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// holdsPart reports whether pl holds part p of segment msn: lists it, or
// the whole segment.
func holdsPart(pl *playlist.Media, msn uint64, p int) bool {
	uri := layout.PartPath(msn, p)
	for _, s := range pl.Segments {
		if s.URI == layout.SegmentPath(msn) {
			return true
		}
		for _, pt := range s.Parts {
			if pt.URI == uri {
				return true
			}
		}
	}
	for _, pt := range pl.Parts {
		if pt.URI == uri {
			return true
		}
	}
	return false
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

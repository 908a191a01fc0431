package loadtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goldenList parses one of the origin's golden media playlists.
func goldenList(t *testing.T, name string) *segmentList {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseMedia(body)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestParseLLGolden reads the LL-HLS tags of the origin's golden
// playlists (origin/playlist_ll.go): a whole one and its delta update.
func TestParseLLGolden(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, "2026-11-21T"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		first uint64
		delta bool
	}{
		{"ll_v0.m3u8", 0, false},
		{"ll_v0_delta.m3u8", 2, true}, // EXT-X-SKIP:SKIPPED-SEGMENTS=2
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := goldenList(t, tc.name)
			ll := l.ll
			if ll == nil {
				t.Fatal("no LL-HLS information")
			}
			if l.first != tc.first || listEnd(l) != 8 || ll.delta != tc.delta {
				t.Errorf("segments %d to %d, delta %v; want from %d to 8, delta %v", l.first, listEnd(l), ll.delta, tc.first, tc.delta)
			}
			if ll.partTarget != 260*time.Millisecond || ll.holdBack != 780*time.Millisecond || !ll.canBlock || !ll.canSkip {
				t.Errorf("part target %v, hold back %v, block %v, skip %v", ll.partTarget, ll.holdBack, ll.canBlock, ll.canSkip)
			}
			// Segments 6 and 7 list four parts each, segment 8 (being
			// produced) two; the hint is 8.2.
			if len(ll.parts) != 10 {
				t.Fatalf("%d parts, want 10", len(ll.parts))
			}
			for i, p := range ll.parts {
				want := partPos{6 + uint64(i/4), i % 4}
				if uri := strings.TrimSuffix(p.uri, ".m4s"); p.partPos != want || uri != fmt.Sprintf("%d.%d", want.msn, want.index) {
					t.Errorf("part %d: %+v %q, want %+v", i, p.partPos, p.uri, want)
				}
				if p.independent != (want.index == 0) || p.duration != 250*time.Millisecond {
					t.Errorf("part %d: independent %v, %v", i, p.independent, p.duration)
				}
				// Dated from their segment's EXT-X-PROGRAM-DATE-TIME
				// (12:00:08.5 after the discontinuity), segment 8's from
				// the end of 7.
				if wantDate := at("12:00:08.5").Add(time.Duration(i) * 250 * time.Millisecond); !p.date.Equal(wantDate) {
					t.Errorf("part %d dated %v, want %v", i, p.date, wantDate)
				}
			}
			if !ll.hasHint || ll.hint != (partPos{8, 2}) || ll.hintURI != "8.2.m4s" {
				t.Errorf("hint %+v %q", ll.hint, ll.hintURI)
			}
			if edge, ok := l.llEdge(); !ok || !edge.Equal(at("12:00:11")) {
				t.Errorf("edge %v %v, want 12:00:11", edge, ok)
			}
			if end, ok := l.wallEnd(7); !ok || !end.Equal(at("12:00:10.5")) {
				t.Errorf("segment 7 ends %v %v", end, ok)
			}
		})
	}
}

// TestLLNext: what a player in low-latency mode does for each part, on
// the golden playlist and its delta update.
func TestLLNext(t *testing.T) {
	full, delta := goldenList(t, "ll_v0.m3u8"), goldenList(t, "ll_v0_delta.m3u8")
	for _, tc := range []struct {
		name string
		l    *segmentList
		in   partPos
		step llStep
		out  partPos
	}{
		{"listed part", full, partPos{6, 0}, stepPart, partPos{6, 0}},
		{"last part of a segment", full, partPos{7, 3}, stepPart, partPos{7, 3}},
		{"past the last part: the next segment's first", full, partPos{6, 4}, stepPart, partPos{7, 0}},
		{"part of the segment being produced", full, partPos{8, 1}, stepPart, partPos{8, 1}},
		{"the hinted part", full, partPos{8, 2}, stepHint, partPos{8, 2}},
		{"beyond the hint: blocking reload", full, partPos{8, 3}, stepReload, partPos{8, 3}},
		{"next segment: blocking reload", full, partPos{9, 0}, stepReload, partPos{9, 0}},
		{"segment without parts listed: whole", full, partPos{5, 0}, stepSegment, partPos{5, 0}},
		{"from within such a segment: the rest of it", full, partPos{5, 2}, stepSegment, partPos{5, 2}},
		{"first segment", full, partPos{0, 0}, stepSegment, partPos{0, 0}},
		{"skipped by the delta update", delta, partPos{1, 0}, stepBehind, partPos{1, 0}},
		{"first after the skip", delta, partPos{2, 0}, stepSegment, partPos{2, 0}},
		{"hint in the delta update", delta, partPos{8, 2}, stepHint, partPos{8, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, out := tc.l.llNext(tc.in)
			if step != tc.step || out != tc.out {
				t.Errorf("llNext(%+v) = %v, %+v; want %v, %+v", tc.in, step, out, tc.step, tc.out)
			}
		})
	}
}

// TestLLStart: hls.js in lowLatencyMode starts PART-HOLD-BACK behind the
// end, loading from the last independent part at or before that point.
func TestLLStart(t *testing.T) {
	l := goldenList(t, "ll_v0.m3u8")
	for _, tc := range []struct {
		back time.Duration
		want partPos
		skip time.Duration
	}{
		{780 * time.Millisecond, partPos{7, 0}, 720 * time.Millisecond}, // 8.0 begins only 0.5 s before the end
		{500 * time.Millisecond, partPos{8, 0}, 0},
		{400 * time.Millisecond, partPos{8, 0}, 100 * time.Millisecond},
		{2 * time.Second, partPos{6, 0}, 500 * time.Millisecond},
		{time.Minute, partPos{6, 0}, 0}, // no independent part that early: the first
	} {
		p, skip, ok := l.llStart(tc.back)
		if !ok || p != tc.want || skip != tc.skip {
			t.Errorf("%v back: %+v skipping %v (%v), want %+v skipping %v", tc.back, p, skip, ok, tc.want, tc.skip)
		}
	}
}

// TestParseMPDTiming reads what a low-latency DASH player needs of the
// origin's golden MPD: the timeline on the wall clock, availability, the
// target latency.
func TestParseMPDTiming(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "live_manifest.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseMPD(body)
	if err != nil {
		t.Fatal(err)
	}
	ast := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for id, ts := range map[string]uint64{"v0": 90000, "a0": 48000} {
		l := e.lists[id]
		d := l.dash
		if d == nil || d.timescale != ts || !d.availZero.Equal(ast) || !d.wallZero.Equal(ast) ||
			d.availOffset != 750*time.Millisecond || !d.chunked || d.target != 1500*time.Millisecond {
			t.Fatalf("%s: %+v", id, d)
		}
		if len(d.starts) != len(l.durations) || len(d.starts) != 8 {
			t.Fatalf("%s: %d starts for %d segments", id, len(d.starts), len(l.durations))
		}
	}
	v := e.lists["v0"]
	// S t=0 d=90000 r=5, then t=765000 (8.5 s) r=1: segments 0-5 from 0,
	// 6 and 7 from 8.5 s.
	for n, want := range map[uint64]time.Duration{0: 0, 5: 5 * time.Second, 6: 8500 * time.Millisecond, 7: 9500 * time.Millisecond} {
		if got := v.dash.starts[n]; got != want {
			t.Errorf("v0 segment %d starts at %v, want %v", n, got, want)
		}
	}
	if end, ok := v.wallEnd(7); !ok || !end.Equal(ast.Add(10500*time.Millisecond)) {
		t.Errorf("v0 segment 7 ends %v %v", end, ok)
	}
	for _, tc := range []struct {
		at    time.Duration
		n     uint64
		start time.Duration
	}{
		{3200 * time.Millisecond, 3, 3 * time.Second},
		{7 * time.Second, 6, 8500 * time.Millisecond},           // in the gap: the next segment
		{10600 * time.Millisecond, 8, 10500 * time.Millisecond}, // after the last: where the timeline puts it
		{12700 * time.Millisecond, 10, 12500 * time.Millisecond},
		{-time.Second, 0, 0},
	} {
		if n, start := dashAt(v, tc.at); n != tc.n || start != tc.start {
			t.Errorf("dashAt(%v) = %d, %v; want %d, %v", tc.at, n, start, tc.n, tc.start)
		}
	}
}

package origin

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/packager"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenDir holds the playlists and MPDs the builders must produce.
const goldenDir = "../testdata/golden"

// fixture builds a stream snapshot by hand: a video rendition with 1-s
// segments (one of them after a reconnect) and an audio rendition.
func fixture(window time.Duration, ended bool) (*stream, *snapshot, Config) {
	ast := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cfg := Config{Window: window, SegmentDuration: time.Second, ChunkDuration: 250 * time.Millisecond}
	st := &stream{instance: instance{name: "cam1", epoch: "mf0epoch", ast: ast, pres: ast}, env: &streamEnv{cfg: cfg}}

	video := &rendition{id: "v0", targetDuration: 1, info: packager.Info{
		Codec: "avc1.64001e", Video: true, Width: 640, Height: 360, Timescale: 90000,
	}}
	audio := &rendition{id: "a0", targetDuration: 1, info: packager.Info{
		Codec: "mp4a.40.2", SampleRate: 48000, Channels: 2, Timescale: 48000,
	}}
	vstart, astart := int64(0), int64(0)
	for n := uint64(0); n < 8; n++ {
		vdur, adur := int64(90000), int64(48*1024)
		disc := n == 6
		if disc { // a publisher reconnected 2.5 s later
			vstart += 225000
			astart += 120000
		}
		video.entries = slide(video, &entry{seg: &packager.Segment{
			Number: n, Start: vstart, Duration: vdur, Timescale: 90000,
			Data: make([]byte, 100000+int(n)*1000), Samples: 30,
		}, disc: disc, listed: true}, cfg.Window, cfg.SegmentDuration)
		audio.entries = slide(audio, &entry{seg: &packager.Segment{
			Number: n, Start: astart, Duration: adur, Timescale: 48000,
			Data: make([]byte, 16000), Samples: 48,
		}, disc: disc, listed: true}, cfg.Window, cfg.SegmentDuration)
		video.next, audio.next = n+1, n+1
		vstart += vdur
		astart += adur
	}
	snap := &snapshot{renditions: []*rendition{video, audio}, ended: ended}
	for _, r := range snap.renditions {
		r.playlist = newLazy(func() *object { return newObject(mediaPlaylist(&st.instance, r, snap, false), typeM3U8, ast, false) })
	}
	return st, snap, cfg
}

func TestManifestsGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		ended  bool
	}{
		{"live", 30 * time.Second, false},
		{"sliding", 4 * time.Second, false},
		{"ended", 30 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, snap, cfg := fixture(tc.window, tc.ended)
			now := st.ast.Add(10 * time.Second)
			mpdBody, err := buildMPD(view{&st.instance, snap}, nil, cfg, now)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				tc.name + "_index.m3u8":   multivariantPlaylist(&st.instance, snap),
				tc.name + "_v0.m3u8":      snap.rendition("v0").playlist.get().body,
				tc.name + "_a0.m3u8":      snap.rendition("a0").playlist.get().body,
				tc.name + "_manifest.mpd": mpdBody,
			}
			for name, got := range files {
				checkGolden(t, name, got)
			}

			// Parse back with the real libraries.
			var mv playlist.Multivariant
			if err := mv.Unmarshal(files[tc.name+"_index.m3u8"]); err != nil {
				t.Fatalf("multivariant: %v", err)
			}
			if len(mv.Variants) != 1 || mv.Variants[0].Audio != "audio" || mv.Variants[0].Resolution != "640x360" {
				t.Errorf("variants = %+v", mv.Variants)
			}
			var media playlist.Media
			if err := media.Unmarshal(files[tc.name+"_v0.m3u8"]); err != nil {
				t.Fatalf("media: %v", err)
			}
			if media.Endlist != tc.ended {
				t.Errorf("endlist = %v, want %v", media.Endlist, tc.ended)
			}
			m, err := mpd.ReadFromString(string(mpdBody))
			if err != nil {
				t.Fatalf("mpd: %v", err)
			}
			if got := len(m.Periods[0].AdaptationSets); got != 2 {
				t.Errorf("%d adaptation sets, want 2", got)
			}
			if tc.ended != (m.MinimumUpdatePeriod == nil) || tc.ended != (m.GetType() == "static") {
				t.Errorf("type %s, minimumUpdatePeriod = %v with ended = %v", m.GetType(), m.MinimumUpdatePeriod, tc.ended)
			}
		})
	}
}

// TestMPDPeriods checks the MPD of an instance that continues another
// (its publisher was lost, or changed its video setup, mid-stream): the
// earlier instance is the first Period, while it is in the time-shift
// buffer, and the presentation keeps its availabilityStartTime.
func TestMPDPeriods(t *testing.T) {
	old, oldSnap, cfg := fixture(30*time.Second, false)
	old.snap.Store(oldSnap)
	cur, snap, _ := fixture(30*time.Second, false)
	cur.epoch = "mf1epoch"
	cur.ast = old.ast.Add(10 * time.Second)
	cur.continues(old)
	// old's media runs to 10.692 s, ahead of the wall clock: the next
	// Period begins where it ends.
	if cur.start != oldSnap.end() {
		t.Errorf("continuing media that ends at %v, 10 s on: start %v", oldSnap.end(), cur.start)
	}
	cur.ast = old.ast.Add(11 * time.Second)
	cur.continues(old)
	if cur.start != 11*time.Second {
		t.Errorf("continuing media that ends at %v, 11 s on: start %v", oldSnap.end(), cur.start)
	}
	if len(cur.prior) != 1 || cur.prior[0] != old {
		t.Fatalf("prior %v, want old", cur.prior)
	}

	body, err := buildMPD(view{&cur.instance, snap}, views(cur.prior), cfg, cur.ast.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "periods_manifest.mpd", body)
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.GetType() != "dynamic" || m.AvailabilityStartTime != "2026-11-21T12:00:00.000Z" {
		t.Errorf("type %s, availabilityStartTime %s: want the first instance's, dynamic", m.GetType(), m.AvailabilityStartTime)
	}
	want := []struct {
		id, media string
		start     time.Duration
	}{{"mf0epoch", "mf0epoch/$RepresentationID$/$Number$.m4s", 0}, {"mf1epoch", "mf1epoch/$RepresentationID$/$Number$.m4s", 11 * time.Second}}
	if len(m.Periods) != len(want) {
		t.Fatalf("%d periods, want %d", len(m.Periods), len(want))
	}
	for i, w := range want {
		p := m.Periods[i]
		if p.Id != w.id || p.Start == nil || time.Duration(*p.Start) != w.start {
			t.Errorf("period %d: id %s, start %v; want %s at %v", i, p.Id, p.Start, w.id, w.start)
		}
		for _, as := range p.AdaptationSets {
			for _, rep := range as.Representations {
				if rep.SegmentTemplate.Media != w.media {
					t.Errorf("period %d, %s: media %s, want %s", i, rep.Id, rep.SegmentTemplate.Media, w.media)
				}
			}
		}
	}

	// Once all of it has left the time-shift buffer, the earlier Period
	// goes; the presentation's times stay.
	body, err = buildMPD(view{&cur.instance, snap}, views([]*stream{old}), cfg, old.ast.Add(oldSnap.end()+cfg.Window+time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = mpd.ReadFromString(string(body)); err != nil {
		t.Fatal(err)
	}
	if len(m.Periods) != 1 || m.Periods[0].Id != "mf1epoch" || time.Duration(*m.Periods[0].Start) != 11*time.Second ||
		m.AvailabilityStartTime != "2026-11-21T12:00:00.000Z" {
		t.Errorf("later: %d periods, first %s, AST %s; want mf1epoch alone at 11 s, AST unchanged", len(m.Periods), m.Periods[0].Id, m.AvailabilityStartTime)
	}

	// When it ends, the presentation lasts to the end of its last Period.
	snap.ended = true
	body, err = buildMPD(view{&cur.instance, snap}, views([]*stream{old}), cfg, cur.ast.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = mpd.ReadFromString(string(body)); err != nil {
		t.Fatal(err)
	}
	if m.MediaPresentationDuration == nil || time.Duration(*m.MediaPresentationDuration) != 11*time.Second+snap.end() {
		t.Errorf("ended: mediaPresentationDuration %v, want 11 s + %v", m.MediaPresentationDuration, snap.end())
	}
}

// TestSlidingWindow checks the listing and retention rules on the fixture
// with a 4-s window. The window is media time: the stream ends at 10.5 s
// (8 segments and a 2.5-s gap before segment 6), so segments starting at
// 6.5 s or later are listed (6 and 7), and those ending after 1.5 s
// (Window + one segment earlier) are kept.
func TestSlidingWindow(t *testing.T) {
	_, snap, _ := fixture(4*time.Second, false)
	v := snap.rendition("v0")
	listed := v.listed()
	if len(listed) != 2 || listed[0].seg.Number != 6 {
		t.Fatalf("listed %d segments from %d, want 2 from 6", len(listed), listed[0].seg.Number)
	}
	if first := v.entries[0].seg.Number; first != 1 {
		t.Errorf("retained from %d, want 1", first)
	}
	if v.discSeq != 0 {
		t.Errorf("discSeq = %d; the discontinuity is still listed", v.discSeq)
	}
	for _, n := range []uint64{1, 3, 7} {
		if e := v.find(n); e == nil || e.seg.Number != n {
			t.Errorf("find(%d) = %v", n, e)
		}
	}
	for _, n := range []uint64{0, 8} {
		if e := v.find(n); e != nil {
			t.Errorf("find(%d) = %v, want nil", n, e)
		}
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./origin -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSnapRate(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{30, 30}, {30.006, 30}, {29.97, 29.97}, {29.9701, 29.97}, {29.95, 29.95},
		{25.01, 25}, {25.02, 25.02}, {59.94, 59.94}, {60.02, 60}, {12.5, 12.5}, {23.976, 23.976},
	} {
		if got := snapRate(tc.in); got != tc.want {
			t.Errorf("snapRate(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := frameRate(snapRate(29.97)); got != "30000/1001" {
		t.Errorf("frameRate(29.97) = %s", got)
	}
}

func TestStartVariantFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates []int // average bit rate of each variant, in rendition order
		want  []int // the order listed: indexes into rates
	}{
		{"source above, ladder below", []int{6_000_000, 2_600_000, 1_100_000, 450_000}, []int{1, 0, 2, 3}},
		{"source below", []int{1_500_000, 1_100_000, 450_000}, []int{0, 1, 2}},
		{"all above", []int{9_000_000, 5_000_000, 4_000_000}, []int{2, 0, 1}},
		{"exactly the bound", []int{4_000_000, startBandwidth, 1_000_000}, []int{1, 0, 2}},
		{"one", []int{8_000_000}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs []*playlist.MultivariantVariant
			for i, r := range tc.rates {
				avg := r
				vs = append(vs, &playlist.MultivariantVariant{Bandwidth: r, AverageBandwidth: &avg, URI: strconv.Itoa(i)})
			}
			startFirst(vs)
			for i, v := range vs {
				if v.URI != strconv.Itoa(tc.want[i]) {
					t.Fatalf("listed %v, want %v", uris(vs), tc.want)
				}
			}
		})
	}
}

func uris(vs []*playlist.MultivariantVariant) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.URI)
	}
	return out
}

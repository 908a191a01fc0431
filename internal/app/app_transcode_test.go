package app

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/publisher"
	"github.com/golivestream/live/transcode"
)

// variants fetches a stream's multivariant playlist.
func (a *testApp) variants(t *testing.T, name string) (*url.URL, *playlist.Multivariant) {
	t.Helper()
	u, err := url.Parse(a.base + "/live/" + name + "/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, u.String())); err != nil {
		t.Fatalf("multivariant playlist: %v", err)
	}
	return u, &mv
}

// renditionURL returns the media playlist URL of the variant whose URI is
// in directory rid ("v1").
func renditionURL(t *testing.T, base *url.URL, mv *playlist.Multivariant, rid string) string {
	t.Helper()
	for _, v := range mv.Variants {
		if strings.HasSuffix(v.URI, "/"+rid+"/index.m3u8") {
			return base.ResolveReference(&url.URL{Path: v.URI}).String()
		}
	}
	t.Fatalf("no variant %s in the multivariant playlist", rid)
	return ""
}

// TestTranscodeLadder publishes a 1080p30 source with a 2-s GOP (no
// B-frames) with ffmpeg and checks the default ladder made from it: every
// ladder segment is 1.0 s and starts with a keyframe; same-numbered
// segments of every ladder rendition have the same tfdt and duration; the
// source rendition's 2-s segments start on ladder boundaries; the
// manifests describe what was packaged.
func TestTranscodeLadder(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	src := filepath.Join(t.TempDir(), "src.flv")
	if out, err := runCmd(context.Background(), 2*time.Minute, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=14",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=14",
		"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-b:v", "4M", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", src); err != nil {
		t.Fatalf("make source: %v\n%s", err, out)
	}

	a := startApp(t, Config{Transcode: &transcode.Config{}})
	ctx, cancel := context.WithCancel(context.Background())
	pub := make(chan error, 1)
	go func() {
		out, err := runCmd(ctx, time.Minute, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", src, "-c", "copy", "-f", "flv", a.rtmp+"abr")
		if err != nil && ctx.Err() == nil {
			t.Logf("publisher: %s", out)
		}
		pub <- err
	}()
	t.Cleanup(func() { cancel(); <-pub })

	// Wait for eight segments in the smallest ladder rendition: the
	// others have them too, give or take one being encoded.
	var base *url.URL
	var mv *playlist.Multivariant
	waitFor(t, 45*time.Second, "8 segments in every ladder rendition", func() bool {
		code, body := get(t, a.base+"/live/abr/index.m3u8")
		if code != 200 {
			return false
		}
		var m playlist.Multivariant
		if err := m.Unmarshal(body); err != nil || len(m.Variants) < 4 {
			return false
		}
		base, _ = url.Parse(a.base + "/live/abr/index.m3u8")
		var pl playlist.Media
		if err := pl.Unmarshal(mustGet(t, renditionURL(t, base, &m, "v3"))); err != nil {
			return false
		}
		return len(pl.Segments) >= 8
	})
	base, mv = a.variants(t, "abr")

	// The variants: true resolutions, codecs, frame rates, and bandwidths
	// that go down the ladder.
	want := map[string]string{"v0": "1920x1080", "v1": "1280x720", "v2": "854x480", "v3": "426x240"}
	bw := map[string]int{}
	for _, v := range mv.Variants {
		rid := filepath.Base(filepath.Dir(v.URI))
		if v.Resolution != want[rid] {
			t.Errorf("variant %s: RESOLUTION %s, want %s", rid, v.Resolution, want[rid])
		}
		if v.FrameRate == nil || *v.FrameRate != 30 {
			t.Errorf("variant %s: FRAME-RATE %v, want 30", rid, v.FrameRate)
		}
		if len(v.Codecs) != 2 || !strings.HasPrefix(v.Codecs[0], "avc1.") || v.Codecs[1] != "mp4a.40.2" {
			t.Errorf("variant %s: CODECS %v", rid, v.Codecs)
		}
		if v.AverageBandwidth == nil || *v.AverageBandwidth <= 0 || *v.AverageBandwidth > v.Bandwidth {
			t.Errorf("variant %s: AVERAGE-BANDWIDTH %v, BANDWIDTH %d", rid, v.AverageBandwidth, v.Bandwidth)
		}
		bw[rid] = v.Bandwidth
	}
	if len(bw) != 4 || !(bw["v1"] > bw["v2"] && bw["v2"] > bw["v3"]) {
		t.Errorf("bandwidths %v: want 4 variants, going down the ladder", bw)
	}
	// Safari starts with the first variant listed: the 720p rung, not the
	// 4 Mb/s source.
	if first := filepath.Base(filepath.Dir(mv.Variants[0].URI)); first != "v1" {
		t.Errorf("first variant %s (%d b/s on average), want v1", first, *mv.Variants[0].AverageBandwidth)
	}
	// Each rung stays within its target rate (the encoder's buffer is one
	// second of it) plus the shared audio.
	for rid, target := range map[string]int{"v1": 2_500_000, "v2": 1_000_000, "v3": 400_000} {
		if bw[rid] > target*3/2+200_000 {
			t.Errorf("variant %s: BANDWIDTH %d, target %d", rid, bw[rid], target)
		}
	}

	// The segments, parsed back with mp4ff.
	tracks := map[string]*track{}
	for rid := range want {
		tracks[rid], _ = readRendition(t, renditionURL(t, base, mv, rid))
	}
	ladderStarts := map[uint64]bool{}
	ref := map[uint64]segInfo{} // number -> v3's segment
	for _, s := range tracks["v3"].segs {
		ref[s.number] = s
		ladderStarts[s.tfdt] = true
	}
	for _, rid := range []string{"v1", "v2", "v3"} {
		tr := tracks[rid]
		checkTimeline(t, rid, tr, true)
		matched := 0
		for _, s := range tr.segs {
			if s.duration != uint64(tr.timescale) {
				t.Errorf("%s segment %d: %d ticks, want 1 s (%d)", rid, s.number, s.duration, tr.timescale)
			}
			if r, ok := ref[s.number]; ok {
				matched++
				if r.tfdt != s.tfdt || r.duration != s.duration {
					t.Errorf("%s segment %d covers [%d,+%d), v3's covers [%d,+%d)", rid, s.number, s.tfdt, s.duration, r.tfdt, r.duration)
				}
			}
		}
		if matched < 6 {
			t.Errorf("%s: only %d segments numbered like v3's", rid, matched)
		}
	}
	// The source passes through: 2-s segments, each starting where a
	// ladder segment starts, within the span of v3 read (the renditions
	// were read one after another, and the ladder trails the source).
	src0 := tracks["v0"]
	v3 := tracks["v3"].segs
	aligned := 0
	for _, s := range src0.segs {
		if s.duration != 2*uint64(src0.timescale) {
			t.Errorf("v0 segment %d: %d ticks, want 2 s", s.number, s.duration)
		}
		if s.tfdt < v3[0].tfdt || s.tfdt > v3[len(v3)-1].tfdt {
			continue
		}
		if !ladderStarts[s.tfdt] {
			t.Errorf("v0 segment %d starts at %d, on no ladder boundary", s.number, s.tfdt)
		}
		aligned++
	}
	if aligned < 2 {
		t.Errorf("only %d v0 segments within v3's span [%d, %d]", aligned, v3[0].tfdt, v3[len(v3)-1].tfdt)
	}

	// The MPD: one video AdaptationSet with every rendition. Its
	// segmentAlignment is false: the 2-s source segments are numbered
	// differently from the 1-s ladder's.
	body := mustGet(t, a.base+"/live/abr/manifest.mpd")
	validateMPD(t, body)
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	var videoSets int
	for _, as := range m.Periods[0].AdaptationSets {
		if as.ContentType != "video" {
			continue
		}
		videoSets++
		var ids []string
		for _, r := range as.Representations {
			ids = append(ids, r.Id)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"v0", "v1", "v2", "v3"}) {
			t.Errorf("video AdaptationSet has %v", ids)
		}
		if bool(as.SegmentAlignment) {
			t.Errorf("segmentAlignment is true, but v0's 2-s segments overlap differently numbered ladder segments")
		}
	}
	if videoSets != 1 {
		t.Errorf("%d video AdaptationSets, want 1", videoSets)
	}

	// The transcoder reports its job with the three rungs.
	st := a.Transcoder().Status()
	if len(st) != 1 || !slices.Equal(st[0].Rungs, []string{"720p", "480p", "240p"}) || st[0].PID == 0 {
		t.Errorf("status %+v, want one job with 720p, 480p and 240p", st)
	}
}

// TestTranscodeRestart kills a stream's ffmpeg: the source rendition goes
// on without a gap, and the ladder comes back after a discontinuity. A
// second stream past the transcode limit gets its source rendition only.
func TestTranscodeRestart(t *testing.T) {
	requireTool(t, "ffmpeg")
	a := startApp(t, Config{Transcode: &transcode.Config{MaxJobs: 1}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, name := range []string{"ladder", "extra"} {
		go func() {
			done <- publisher.Publish(ctx, publisher.Config{URL: a.rtmp + name, Clip: clip, Loops: 100})
		}()
	}
	t.Cleanup(func() { cancel(); <-done; <-done })

	// Which stream got the one transcode depends on who came first.
	var job transcode.Status
	waitFor(t, 20*time.Second, "a transcode job with its ffmpeg", func() bool {
		st := a.Transcoder().Status()
		if len(st) == 1 && st[0].PID != 0 {
			job = st[0]
			return true
		}
		return false
	})
	name, other := job.Stream, "ladder"
	if name == "ladder" {
		other = "extra"
	}
	a.waitLive(t, other, 20*time.Second)
	if _, mv := a.variants(t, other); len(mv.Variants) != 1 {
		t.Errorf("stream %s past the limit has %d variants, want the source only", other, len(mv.Variants))
	}

	var base *url.URL
	var mv *playlist.Multivariant
	waitFor(t, 20*time.Second, "2 segments in the ladder rendition", func() bool {
		code, body := get(t, a.base+"/live/"+name+"/index.m3u8")
		var m playlist.Multivariant
		if code != 200 || m.Unmarshal(body) != nil || len(m.Variants) < 2 {
			return false
		}
		base, mv = a.variants(t, name)
		var pl playlist.Media
		return pl.Unmarshal(mustGet(t, renditionURL(t, base, mv, "v1"))) == nil && len(pl.Segments) >= 2
	})

	if err := syscall.Kill(job.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill ffmpeg %d: %v", job.PID, err)
	}
	waitFor(t, 20*time.Second, "a new ffmpeg", func() bool {
		st := a.Transcoder().Status()
		return len(st) == 1 && st[0].Restarts >= 1 && st[0].PID != 0 && st[0].PID != job.PID
	})
	// The ladder is back: segments after a discontinuity.
	v1 := renditionURL(t, base, mv, "v1")
	waitFor(t, 20*time.Second, "ladder segments after the restart", func() bool {
		var pl playlist.Media
		if pl.Unmarshal(mustGet(t, v1)) != nil {
			return false
		}
		for i, s := range pl.Segments {
			if s.Discontinuity {
				return len(pl.Segments)-i >= 2
			}
		}
		return false
	})

	// The source rendition never missed a segment: its timeline runs on
	// without a gap or a discontinuity from before the kill to after the
	// ladder came back.
	ladder, lpl := readRendition(t, v1)
	tr, pl := readRendition(t, renditionURL(t, base, mv, "v0"))
	checkTimeline(t, "v0", tr, true)
	for _, s := range pl.Segments {
		if s.Discontinuity {
			t.Errorf("v0 has a discontinuity at %s", s.URI)
		}
	}
	var back uint64 // where the ladder came back
	for i, s := range lpl.Segments {
		if s.Discontinuity {
			back = ladder.segs[i].tfdt
		}
	}
	first, last := tr.segs[0], tr.segs[len(tr.segs)-1]
	if first.tfdt > ladder.segs[0].tfdt || last.tfdt+last.duration <= back {
		t.Errorf("v0 covers [%d, %d), want from before the ladder's first segment (%d) to past its return (%d)",
			first.tfdt, last.tfdt+last.duration, ladder.segs[0].tfdt, back)
	}
	metrics := mustGet(t, a.base+"/metrics")
	for _, m := range []string{`live_transcode_restarts_total{stream="` + name + `"} 1`, "live_transcode_passthrough_only_total 1"} {
		if !bytes.Contains(metrics, []byte(m)) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// TestTranscodeReconnect publishes the clip, stops, and publishes it again
// under the same name: the stream resumes, and so does its ladder
// rendition, after a discontinuity, its timeline still locked to the
// source's.
func TestTranscodeReconnect(t *testing.T) {
	requireTool(t, "ffmpeg")
	a := startApp(t, Config{Transcode: &transcode.Config{}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if err := publisher.Publish(context.Background(), publisher.Config{URL: a.rtmp + "again", Clip: clip, Loops: 1}); err != nil {
			t.Fatalf("publish %d: %v", round, err)
		}
		a.waitEnded(t, "again", 20*time.Second)
	}
	base, mv := a.variants(t, "again")
	if len(mv.Variants) != 2 {
		t.Fatalf("%d variants, want the source and 240p", len(mv.Variants))
	}
	src, spl := readRendition(t, renditionURL(t, base, mv, "v0"))
	lad, lpl := readRendition(t, renditionURL(t, base, mv, "v1"))
	disc := func(pl *playlist.Media, tr *track) (int, uint64) {
		n, at := 0, uint64(0)
		for i, s := range pl.Segments {
			if s.Discontinuity {
				n, at = n+1, tr.segs[i].tfdt
			}
		}
		return n, at
	}
	sn, sat := disc(spl, src)
	ln, lat := disc(lpl, lad)
	if sn != 1 || ln != 1 {
		t.Fatalf("discontinuities: source %d, ladder %d; want one each", sn, ln)
	}
	// The ladder resumes on the resumed source timeline, on a boundary at
	// or after the source's restart.
	ts := uint64(lad.timescale)
	if off := lat % ts; lat+ts/100 < sat || lat > sat+2*ts || min(off, ts-off) > ts/10 {
		t.Errorf("ladder resumed at %d, source at %d", lat, sat)
	}
	for i := 1; i < len(lad.segs); i++ {
		if lad.segs[i].number != lad.segs[i-1].number+1 || lad.segs[i].tfdt < lad.segs[i-1].tfdt+lad.segs[i-1].duration {
			t.Errorf("ladder segment %d after %d: numbers or times go back", lad.segs[i].number, lad.segs[i-1].number)
		}
	}
	if !lpl.Endlist || !spl.Endlist {
		t.Errorf("ended stream: ENDLIST source %v, ladder %v", spl.Endlist, lpl.Endlist)
	}
}

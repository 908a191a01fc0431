package app

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/publisher"
)

// track is what a test reads back of one rendition.
type track struct {
	uri       string // media playlist URL
	timescale uint32
	segs      []segInfo
}

// segInfo is one media segment parsed back with mp4ff.
type segInfo struct {
	number   uint64
	path     string // URL path
	tfdt     uint64
	duration uint64
	samples  []mp4.FullSample
	extinf   time.Duration
}

// readRendition fetches a media playlist, its init segment and every listed
// segment, parsing them back with gohlslib and mp4ff.
func readRendition(t *testing.T, playlistURL string) (*track, *playlist.Media) {
	t.Helper()
	var pl playlist.Media
	if err := pl.Unmarshal(mustGet(t, playlistURL)); err != nil {
		t.Fatalf("%s: %v", playlistURL, err)
	}
	base, err := url.Parse(playlistURL)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Map == nil {
		t.Fatalf("%s: no EXT-X-MAP", playlistURL)
	}
	initURL := base.ResolveReference(&url.URL{Path: pl.Map.URI})
	initFile, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(mustGet(t, initURL.String())))
	if err != nil {
		t.Fatalf("init %s: %v", initURL, err)
	}
	if initFile.Init == nil || len(initFile.Init.Moov.Traks) != 1 {
		t.Fatalf("init %s: want one trak", initURL)
	}
	trex := initFile.Init.Moov.Mvex.Trex
	tr := &track{uri: playlistURL, timescale: initFile.Init.Moov.Trak.Mdia.Mdhd.Timescale}
	for i, s := range pl.Segments {
		u := base.ResolveReference(&url.URL{Path: s.URI})
		f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(mustGet(t, u.String())))
		if err != nil {
			t.Fatalf("segment %s: %v", u, err)
		}
		si := segInfo{number: uint64(pl.MediaSequence + i), path: u.Path, extinf: s.Duration}
		for j, frag := range f.Segments[0].Fragments {
			samples, err := frag.GetFullSamples(trex)
			if err != nil {
				t.Fatalf("segment %s: %v", u, err)
			}
			if j == 0 {
				si.tfdt = frag.Moof.Traf.Tfdt.BaseMediaDecodeTime()
			}
			for _, smp := range samples {
				si.duration += uint64(smp.Dur)
			}
			si.samples = append(si.samples, samples...)
		}
		tr.segs = append(tr.segs, si)
	}
	return tr, &pl
}

// checkTimeline checks a rendition's segments: tfdt continuity, decode
// order, and (for video with a 1-s GOP) 1-s segments starting with a
// keyframe. It returns the number of samples.
func checkTimeline(t *testing.T, name string, tr *track, video bool) int {
	t.Helper()
	count := 0
	var lastDTS int64 = -1
	for i, s := range tr.segs {
		if i > 0 {
			prev := tr.segs[i-1]
			if s.tfdt != prev.tfdt+prev.duration {
				t.Errorf("%s segment %d: tfdt %d, want %d (previous tfdt + duration)", name, s.number, s.tfdt, prev.tfdt+prev.duration)
			}
		}
		dts := int64(s.tfdt)
		for _, smp := range s.samples {
			if dts <= lastDTS {
				t.Errorf("%s segment %d: decode time %d after %d", name, s.number, dts, lastDTS)
			}
			lastDTS = dts
			dts += int64(smp.Dur)
		}
		count += len(s.samples)
		secs := float64(s.duration) / float64(tr.timescale)
		if got := s.extinf.Seconds(); math.Abs(got-secs) > 0.001 {
			t.Errorf("%s segment %d: EXTINF %.5f, media %.5f", name, s.number, got, secs)
		}
		if !video {
			continue
		}
		if len(s.samples) == 0 || !s.samples[0].IsSync() {
			t.Errorf("%s segment %d does not start with a keyframe", name, s.number)
		}
		const frame = 1.0 / 30
		if math.Abs(secs-1) > frame+1e-9 {
			t.Errorf("%s segment %d lasts %.4f s, want 1 s ± one frame", name, s.number, secs)
		}
	}
	return count
}

// TestClipEndToEnd publishes the bundled clip with gortmplib's client into
// an in-process server, reads HLS and DASH back over HTTP and parses every
// playlist, manifest and segment with gohlslib, dash-mpd and mp4ff.
func TestClipEndToEnd(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}, PoP: &pop.Config{}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	const loops = 2
	err = publisher.Publish(context.Background(), publisher.Config{
		URL: a.rtmp + "clip", Clip: clip, Loops: loops, Speed: -1,
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	a.waitEnded(t, "clip", 10*time.Second)

	// HLS: the multivariant playlist and every rendition.
	mvURL := a.base + "/live/clip/index.m3u8"
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, mvURL)); err != nil {
		t.Fatal(err)
	}
	if len(mv.Variants) != 1 || len(mv.Renditions) != 1 {
		t.Fatalf("%d variants and %d renditions, want 1 and 1", len(mv.Variants), len(mv.Renditions))
	}
	v := mv.Variants[0]
	if v.Resolution != "640x360" || v.FrameRate == nil || math.Abs(*v.FrameRate-30) > 0.1 ||
		len(v.Codecs) != 2 || !strings.HasPrefix(v.Codecs[0], "avc1.64") || v.Codecs[1] != "mp4a.40.2" ||
		v.Bandwidth <= 0 || v.AverageBandwidth == nil || *v.AverageBandwidth > v.Bandwidth {
		t.Errorf("variant = %+v", v)
	}
	base, _ := url.Parse(mvURL)
	videoURL := base.ResolveReference(&url.URL{Path: v.URI}).String()
	audioURL := base.ResolveReference(&url.URL{Path: *mv.Renditions[0].URI}).String()

	video, vpl := readRendition(t, videoURL)
	audio, apl := readRendition(t, audioURL)
	for _, pl := range []*playlist.Media{vpl, apl} {
		if pl.Version < 7 || !pl.IndependentSegments || !pl.Endlist || pl.TargetDuration < 1 {
			t.Errorf("media playlist header: version %d, independent %v, endlist %v, target %d",
				pl.Version, pl.IndependentSegments, pl.Endlist, pl.TargetDuration)
		}
		for _, s := range pl.Segments {
			if s.DateTime == nil {
				t.Errorf("segment %s without EXT-X-PROGRAM-DATE-TIME", s.URI)
			}
			if int(math.Round(s.Duration.Seconds())) > pl.TargetDuration {
				t.Errorf("segment %s: EXTINF %v above target duration %d", s.URI, s.Duration, pl.TargetDuration)
			}
		}
	}
	if video.timescale != 90000 || audio.timescale != 48000 {
		t.Errorf("timescales %d and %d, want 90000 and 48000", video.timescale, audio.timescale)
	}

	var wantVideo, wantAudio int
	for _, s := range clip.Samples {
		if s.NALUs != nil {
			wantVideo++
		} else {
			wantAudio++
		}
	}
	if got := checkTimeline(t, "video", video, true); got != loops*wantVideo {
		t.Errorf("%d video samples read back, %d published", got, loops*wantVideo)
	}
	if got := checkTimeline(t, "audio", audio, false); got != loops*wantAudio {
		t.Errorf("%d audio samples read back, %d published", got, loops*wantAudio)
	}
	for _, s := range audio.segs {
		for _, smp := range s.samples {
			if smp.Dur != 1024 {
				t.Fatalf("audio segment %d: sample of %d ticks, want 1024", s.number, smp.Dur)
			}
		}
	}

	// DASH: the MPD must address the very same files, with the same times.
	mpdBody := mustGet(t, a.base+"/live/clip/manifest.mpd")
	validateMPD(t, mpdBody)
	m, err := mpd.ReadFromString(string(mpdBody))
	if err != nil {
		t.Fatal(err)
	}
	if m.GetType() != "static" || m.MinimumUpdatePeriod != nil || m.MediaPresentationDuration == nil {
		t.Errorf("ended MPD: type %s, minimumUpdatePeriod %v, mediaPresentationDuration %v",
			m.GetType(), m.MinimumUpdatePeriod, m.MediaPresentationDuration)
	}
	byType := map[string]*track{"video": video, "audio": audio}
	for _, as := range m.Periods[0].AdaptationSets {
		tr := byType[string(as.ContentType)]
		if tr == nil || len(as.Representations) != 1 {
			t.Fatalf("adaptation set %q with %d representations", as.ContentType, len(as.Representations))
		}
		checkDASH(t, a.base+"/live/clip/", as.Representations[0], tr)
	}
}

// checkDASH expands rep's SegmentTemplate and SegmentTimeline into segment
// URLs and times, and compares them with what HLS listed.
func checkDASH(t *testing.T, mpdDir string, rep *mpd.RepresentationType, tr *track) {
	t.Helper()
	tpl := rep.SegmentTemplate
	if tpl == nil || tpl.SegmentTimeline == nil || tpl.Timescale == nil || tpl.StartNumber == nil {
		t.Fatalf("representation %s: incomplete SegmentTemplate", rep.Id)
	}
	if *tpl.Timescale != tr.timescale {
		t.Errorf("representation %s: timescale %d, init says %d", rep.Id, *tpl.Timescale, tr.timescale)
	}
	n := uint64(*tpl.StartNumber)
	var tm uint64
	var got []segInfo
	for _, s := range tpl.SegmentTimeline.S {
		if s.T != nil {
			tm = *s.T
		}
		for range s.R + 1 {
			path := strings.NewReplacer("$RepresentationID$", rep.Id, "$Number$", strconv.FormatUint(n, 10)).Replace(tpl.Media)
			u, _ := url.Parse(mpdDir)
			got = append(got, segInfo{number: n, path: u.ResolveReference(&url.URL{Path: path}).Path, tfdt: tm, duration: s.D})
			n++
			tm += s.D
		}
	}
	if len(got) != len(tr.segs) {
		t.Fatalf("representation %s: MPD lists %d segments, HLS %d", rep.Id, len(got), len(tr.segs))
	}
	for i, g := range got {
		h := tr.segs[i]
		if g.path != h.path || g.tfdt != h.tfdt || g.duration != h.duration {
			t.Errorf("representation %s segment %d: MPD %s t=%d d=%d, HLS %s tfdt=%d d=%d",
				rep.Id, i, g.path, g.tfdt, g.duration, h.path, h.tfdt, h.duration)
		}
	}
}

// TestHeldRequests checks that the next segment is held until it is
// complete (through the PoP, which holds it too), and that far-ahead and
// expired segments get a fast 404 from the origin.
func TestHeldRequests(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: 3 * time.Second}, PoP: &pop.Config{}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- publisher.Publish(ctx, publisher.Config{URL: a.rtmp + "held", Clip: clip})
	}()
	a.waitLive(t, "held", 15*time.Second)

	mvURL := a.base + "/live/held/index.m3u8"
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, mvURL)); err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(mvURL)
	plURL := base.ResolveReference(&url.URL{Path: mv.Variants[0].URI})
	var pl playlist.Media
	if err := pl.Unmarshal(mustGet(t, plURL.String())); err != nil {
		t.Fatal(err)
	}
	last := pl.MediaSequence + len(pl.Segments) - 1
	validateMPD(t, mustGet(t, a.base+"/live/held/manifest.mpd"))
	segURL := func(n int) string {
		return plURL.ResolveReference(&url.URL{Path: fmt.Sprintf("%d.m4s", n)}).String()
	}
	originURL := func(n int) string { return a.origin + strings.TrimPrefix(segURL(n), a.base) }

	// The next segment is not listed yet: the request is held, then served.
	code, body := get(t, segURL(last+1))
	if code != 200 || len(body) == 0 {
		t.Fatalf("next segment %d: status %d, want 200 after being held", last+1, code)
	}
	// Far ahead: 404 at once, with the reason.
	start := time.Now()
	code, body = get(t, originURL(last+10))
	if code != 404 || !strings.Contains(string(body), "too far ahead") {
		t.Errorf("segment %d: status %d %q, want 404 too far ahead", last+10, code, body)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("far-ahead 404 took %v; it must not be held", d)
	}
	// Wait until segment 0 has left the retention (3 s listed + 4 s kept).
	waitFor(t, 20*time.Second, "segment 0 to expire", func() bool {
		code, _ := get(t, originURL(0))
		return code == 404
	})
	code, body = get(t, originURL(0))
	if code != 404 || !strings.Contains(string(body), "expired") {
		t.Errorf("segment 0: status %d %q, want 404 expired", code, body)
	}
	cancel()
	<-pubDone
}

package origin

import (
	"slices"
	"testing"
	"time"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/internal/mpdtest"
)

// goldenPresentation is an epoch of a source (v0), a ladder rendition
// that began two segments later (v1) and audio, with a publisher that
// came back after segment 3 (a jump of the timeline).
func goldenPresentation() *presentation {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	video := func(first uint64, n int) []presSegment {
		var out []presSegment
		start := int64(first) * 90000
		for i := range n {
			s := presSegment{number: first + uint64(i), start: start, duration: 90000, size: 150_000}
			if s.number == 4 {
				s.start += 5 * 90000
				s.disc = true
			}
			start = s.end()
			out = append(out, s)
		}
		return out
	}
	audio := []presSegment{}
	start := int64(0)
	for i, d := range []int64{48128, 47104, 48128, 48128, 47104, 48128, 48128} {
		s := presSegment{number: uint64(i), start: start, duration: d, size: 16_000}
		if i == 4 {
			s.start += 5 * 48000
			s.disc = true
		}
		start = s.end()
		audio = append(audio, s)
	}
	return &presentation{
		epoch: "mx5p2ya4",
		ast:   t0,
		renditions: []*presRendition{
			{id: "v0", codec: "avc1.64001f", video: true, width: 1280, height: 720, fps: 30, timescale: 90000, segs: video(0, 7)},
			{id: "v1", codec: "avc1.4d401e", video: true, width: 640, height: 360, fps: 30, timescale: 90000, segs: video(2, 5)},
			{id: "a0", codec: "mp4a.40.2", sample: 48000, channels: 2, timescale: 48000, segs: audio},
		},
		segment: time.Second,
		now:     t0.Add(20 * time.Second),
	}
}

// TestVODManifests: the manifests of a VOD, and of a DVR window, as
// golden files; the MPDs pass the schema.
func TestVODManifests(t *testing.T) {
	vod := goldenPresentation()
	files := "../../../live/cam/mx5p2ya4/"
	vod.uris = presURIs{
		playlist: func(rid string) string { return rid + "/index.m3u8" },
		files:    func(rid string) string { return "../" + files + rid + "/" },
		mpdFiles: files,
	}
	checkGolden(t, "vod_index.m3u8", presMultivariant(vod))
	checkGolden(t, "vod_v0.m3u8", presMediaPlaylist(vod, vod.renditions[0]))
	checkGolden(t, "vod_a0.m3u8", presMediaPlaylist(vod, vod.renditions[2]))
	m, err := presMPD(vod)
	if err != nil {
		t.Fatal(err)
	}
	mpdtest.Validate(t, m)
	checkGolden(t, "vod_manifest.mpd", m)

	dvr := goldenPresentation()
	dvr.live, dvr.depth = true, 2*time.Hour
	dvr.renditions[0].segs = dvr.renditions[0].segs[2:]
	dvr.renditions[0].discSeq = 3
	dvr.uris = presURIs{
		playlist: func(rid string) string { return "mx5p2ya4/" + rid + "/dvr.m3u8" },
		files:    func(string) string { return "" },
		mpdFiles: "mx5p2ya4/",
	}
	checkGolden(t, "dvr_index.m3u8", presMultivariant(dvr))
	checkGolden(t, "dvr_v0.m3u8", presMediaPlaylist(dvr, dvr.renditions[0]))
	m, err = presMPD(dvr)
	if err != nil {
		t.Fatal(err)
	}
	mpdtest.Validate(t, m)
	checkGolden(t, "dvr_manifest.mpd", m)
}

// TestVODRenditions: an epoch's index becomes renditions video first;
// a gap in numbers or media time is a discontinuity, gaps among the last
// segments (a crash, with writes in parallel) end the rendition before
// them, and a rendition without its init segment is left out.
func TestVODRenditions(t *testing.T) {
	seg := func(rid string, n uint64, start int64) archive.Entry {
		return archive.Entry{Rendition: rid, Kind: archive.KindSegment, Number: n, Start: start, Duration: 10, Timescale: 10, Size: 1}
	}
	init := func(rid string) archive.Entry { return archive.Entry{Rendition: rid, Kind: archive.KindInit, Size: 1} }
	var idx archive.Index
	idx.Entries = append(idx.Entries, init("a0"), seg("a0", 0, 0), seg("a0", 1, 10))
	idx.Entries = append(idx.Entries, init("v0"))
	for n := range uint64(40) {
		switch {
		case n == 5: // dropped: a gap mid-stream
		case n == 30, n == 33: // not written before a crash
		default:
			start := int64(n) * 10
			if n >= 20 {
				start += 100 // the publisher came back after 10 s
			}
			idx.Entries = append(idx.Entries, seg("v0", n, start))
		}
	}
	idx.Entries = append(idx.Entries, seg("v1", 0, 0)) // no init segment
	meta := archive.EpochMeta{Renditions: []archive.Rendition{{ID: "a0"}, {ID: "v0", Width: 2}, {ID: "v1", Width: 1}}}
	rs := vodRenditions(meta, idx)
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.id)
	}
	if !slices.Equal(ids, []string{"v0", "a0"}) {
		t.Fatalf("renditions %v, want v0, a0", ids)
	}
	v0 := rs[0].segs
	if last := v0[len(v0)-1].number; last != 29 {
		t.Errorf("v0 ends at %d, want 29 (before the gaps at its end)", last)
	}
	var discs []uint64
	for _, s := range v0 {
		if s.disc {
			discs = append(discs, s.number)
		}
	}
	if !slices.Equal(discs, []uint64{6, 20}) {
		t.Errorf("discontinuities before %v, want 6 (a gap) and 20 (a jump)", discs)
	}
}

// TestCompareRenditions: video first, by number.
func TestCompareRenditions(t *testing.T) {
	ids := []string{"a0", "v10", "v2", "v0", "a1", "v1"}
	slices.SortFunc(ids, compareRenditions)
	if want := []string{"v0", "v1", "v2", "v10", "a0", "a1"}; !slices.Equal(ids, want) {
		t.Errorf("sorted %v, want %v", ids, want)
	}
}

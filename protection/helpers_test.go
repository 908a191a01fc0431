package protection

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/mp4test"
	"github.com/golivestream/live/packager"
	"github.com/golivestream/live/publisher"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Fixed test keys: the output of the tests is a function of them.
var (
	testKey = Key{
		KID:   mustKID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
		Value: [16]byte{0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f},
		IV:    [16]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf},
	}
	testKey2 = Key{
		KID:   mustKID("11111111-2222-4333-8444-555555555555"),
		Value: [16]byte{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00},
		IV:    [16]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10},
	}
)

func mustKID(s string) KID {
	k, err := ParseKID(s)
	if err != nil {
		panic(err)
	}
	return k
}

// packaged is what a packager.Track hands out for one track.
type packaged struct {
	name   string
	init   []byte
	chunks []*packager.Chunk
	segs   []*packager.Segment
	hevc   bool
	video  bool
}

// newTrack returns a packager.Track collecting into p.
func newTrack(tb testing.TB, p *packaged, c codecs.Codec) *packager.Track {
	tb.Helper()
	tr, err := packager.New(packager.Config{
		Codec:     c,
		OnSegment: func(s *packager.Segment) { p.segs = append(p.segs, s) },
		OnChunk:   func(c *packager.Chunk) { p.chunks = append(p.chunks, c) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	p.init = tr.Init()
	p.video = tr.Info().Video
	return tr
}

// demoClip packages the demo clip (H.264 High with B-frames, CABAC, one
// slice per picture; AAC-LC 48 kHz): 6 segments of 4 chunks per track.
func demoClip(tb testing.TB) (video, audio *packaged) {
	tb.Helper()
	video, audio = &packaged{name: "h264_high"}, &packaged{name: "aac"}
	packageClip(tb, loadDemoClip(tb), video, audio, nil, nil)
	return video, audio
}

func loadDemoClip(tb testing.TB) *publisher.Clip {
	tb.Helper()
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	return clip
}

// packageClip packages clip into video and audio, passing each coded
// slice NAL unit through slice and each AAC frame through frame (nil
// leaves them as they are).
func packageClip(tb testing.TB, clip *publisher.Clip, video, audio *packaged, slice, frame func([]byte) []byte) {
	tb.Helper()
	tracks := make([]*packager.Track, len(clip.Tracks))
	for i, t := range clip.Tracks {
		switch c := t.Codec.(type) {
		case *rtmpcodecs.H264:
			tracks[i] = newTrack(tb, video, &codecs.H264{SPS: c.SPS, PPS: c.PPS})
		case *rtmpcodecs.MPEG4Audio:
			tracks[i] = newTrack(tb, audio, &codecs.MPEG4Audio{Config: *c.Config})
		default:
			tb.Fatalf("demo clip track %T", t.Codec)
		}
	}
	for _, s := range clip.Samples {
		var err error
		switch {
		case s.AU != nil && frame != nil:
			err = tracks[s.Track].WriteAudio(s.PTS, frame(s.AU))
		case s.AU != nil:
			err = tracks[s.Track].WriteAudio(s.PTS, s.AU)
		default:
			nalus := s.NALUs
			if slice != nil {
				nalus = make([][]byte, len(s.NALUs))
				for j, n := range s.NALUs {
					nalus[j] = n
					if t := n[0] & 0x1f; t == 1 || t == 5 {
						nalus[j] = slice(n)
					}
				}
			}
			err = tracks[s.Track].WriteVideo(s.PTS, s.DTS, nalus)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, t := range tracks {
		t.Flush()
	}
}

// annexBClip packages an Annex B elementary stream of testdata/ whose access
// units each start with an AUD, at 30 frames per second.
func annexBClip(tb testing.TB, file string, hevc bool) *packaged {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	nalus := avc.ExtractNalusFromByteStream(data)
	var (
		aus           [][][]byte
		vps, sps, pps []byte
	)
	for _, n := range nalus {
		var aud bool
		if hevc {
			switch (n[0] >> 1) & 0x3f {
			case 32:
				vps = n
			case 33:
				sps = n
			case 34:
				pps = n
			case 35:
				aud = true
			}
		} else {
			switch n[0] & 0x1f {
			case 7:
				sps = n
			case 8:
				pps = n
			case 9:
				aud = true
			}
		}
		if aud || len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	p := &packaged{name: file, hevc: hevc}
	var c codecs.Codec = &codecs.H264{SPS: sps, PPS: pps}
	if hevc {
		c = &codecs.H265{VPS: vps, SPS: sps, PPS: pps}
	}
	tr := newTrack(tb, p, c)
	for i, au := range aus {
		dts := time.Duration(i) * time.Second / 30
		if err := tr.WriteVideo(dts+time.Second/15, dts, au); err != nil {
			tb.Fatal(err)
		}
	}
	tr.Flush()
	if len(p.segs) < 2 {
		tb.Fatalf("%s: %d segments", file, len(p.segs))
	}
	return p
}

// allTracks returns every test input: the demo clip's H.264 and AAC, a
// baseline H.264 stream with three CAVLC slices per picture, and an H.265
// stream with two slices per picture, wavefront entry points and B-frames.
func allTracks(tb testing.TB) []*packaged {
	v, a := demoClip(tb)
	return []*packaged{
		v, a,
		annexBClip(tb, "baseline_slices.h264", false),
		annexBClip(tb, "wpp_slices.h265", true),
	}
}

// decryptMedia decrypts encrypted media (moof+mdat pairs) of track with
// key, as a later key period's seig sample group names it
// (mp4test.Decrypt).
func decryptMedia(tb testing.TB, encInit, media []byte, key Key, track string) []byte {
	tb.Helper()
	iv := key.TrackIV(track)
	return mp4test.Decrypt(tb, encInit, media, key.KID, key.Value[:], iv[:])
}

// golden compares got with testdata/name, or writes it with -update.
func golden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

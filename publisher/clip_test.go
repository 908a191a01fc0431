package publisher

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/golivestream/live/internal/democlip"
)

// clipReadDemo returns the demo clip (internal/democlip).
func clipReadDemo(testing.TB) []byte { return democlip.Bytes() }

func clipLoadDemo(t testing.TB) *Clip {
	t.Helper()
	c, err := LoadClip(clipReadDemo(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadClipDemo(t *testing.T) {
	c := clipLoadDemo(t)

	if len(c.Tracks) != 2 {
		t.Fatalf("got %d tracks, want 2", len(c.Tracks))
	}
	video, ok := c.Tracks[0].Codec.(*codecs.H264)
	if !ok {
		t.Fatalf("track 0 is %T, want *codecs.H264", c.Tracks[0].Codec)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(video.SPS); err != nil {
		t.Fatal(err)
	}
	if sps.Width() != 640 || sps.Height() != 360 || sps.ProfileIdc != 100 {
		t.Errorf("SPS: %dx%d profile %d, want 640x360 High (100)", sps.Width(), sps.Height(), sps.ProfileIdc)
	}
	audio, ok := c.Tracks[1].Codec.(*codecs.MPEG4Audio)
	if !ok {
		t.Fatalf("track 1 is %T, want *codecs.MPEG4Audio", c.Tracks[1].Codec)
	}
	if audio.Config.SampleRate != 48000 || audio.Config.ChannelCount != 2 {
		t.Errorf("AAC config %+v, want 48 kHz stereo", audio.Config)
	}

	var vs, as []ClipSample
	for i, s := range c.Samples {
		if i > 0 && s.DTS < c.Samples[i-1].DTS {
			t.Fatalf("sample %d: DTS %v before %v", i, s.DTS, c.Samples[i-1].DTS)
		}
		if s.Track == 0 {
			vs = append(vs, s)
		} else {
			as = append(as, s)
		}
	}
	if c.Samples[0].DTS != 0 {
		t.Errorf("first DTS %v, want 0", c.Samples[0].DTS)
	}

	if len(vs) != 180 {
		t.Errorf("got %d video samples, want 180", len(vs))
	}
	reordered := 0
	for i, s := range vs {
		if want := i%30 == 0; s.Key != want {
			t.Errorf("video sample %d: Key %v, want %v", i, s.Key, want)
		}
		if s.PTS != s.DTS {
			reordered++
		}
		if s.PTS < s.DTS {
			t.Errorf("video sample %d: PTS %v before DTS %v", i, s.PTS, s.DTS)
		}
		if i > 0 && s.DTS <= vs[i-1].DTS {
			t.Errorf("video sample %d: DTS %v not after %v", i, s.DTS, vs[i-1].DTS)
		}
		if len(s.NALUs) == 0 || s.AU != nil {
			t.Errorf("video sample %d: %d NALUs, AU %d bytes", i, len(s.NALUs), len(s.AU))
		}
	}
	if reordered == 0 {
		t.Error("no video sample has PTS != DTS: B-frames expected")
	}

	// 6 s of 48 kHz audio in 1024-sample frames, plus the encoder's priming.
	if want := 6.0 * 48000 / 1024; math.Abs(float64(len(as))-want) > 2 {
		t.Errorf("got %d audio samples, want about %.0f", len(as), want)
	}
	for i, s := range as {
		if len(s.AU) == 0 || s.NALUs != nil || s.Key || s.PTS != s.DTS {
			t.Errorf("audio sample %d: %+v", i, s)
		}
	}

	// The AAC track spans 6 s plus its priming frame, 1024/48000 s.
	if d := c.Duration - 6*time.Second; d < 0 || d > 25*time.Millisecond {
		t.Errorf("Duration %v, want 6s and at most a frame", c.Duration)
	}
	// Edit lists applied: the first video picture and the first audio
	// sample after the AAC priming frame are presented together.
	if d := vs[0].PTS - as[1].PTS; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("video starts at %v, audio at %v: edit lists not applied", vs[0].PTS, as[1].PTS)
	}
}

func TestLoadClipFragmented(t *testing.T) {
	demo := clipLoadDemo(t)
	for _, tc := range []struct {
		name   string
		tracks []int
	}{
		{"video and audio", []int{0, 1}},
		{"video only", []int{0}},
		{"audio only", []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadClip(clipFragment(t, demo, tc.tracks))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Tracks) != len(tc.tracks) {
				t.Fatalf("got %d tracks, want %d", len(c.Tracks), len(tc.tracks))
			}
			// Timestamps are shifted so that the clip starts at zero.
			shift := time.Duration(math.MaxInt64)
			for _, src := range tc.tracks {
				shift = min(shift, clipTrackSamples(demo, src)[0].DTS)
			}
			for i, src := range tc.tracks {
				got, want := clipTrackSamples(c, i), clipTrackSamples(demo, src)
				if len(got) != len(want) {
					t.Fatalf("track %d: got %d samples, want %d", i, len(got), len(want))
				}
				for k := range got {
					g, w := got[k], want[k]
					if !clipNear(g.DTS+shift, w.DTS) || !clipNear(g.PTS+shift, w.PTS) || g.Key != w.Key ||
						!bytes.Equal(g.AU, w.AU) || len(g.NALUs) != len(w.NALUs) {
						t.Fatalf("track %d sample %d: got %+v, want %+v", i, k, g, w)
					}
					for n := range g.NALUs {
						if !bytes.Equal(g.NALUs[n], w.NALUs[n]) {
							t.Fatalf("track %d sample %d NALU %d differs", i, k, n)
						}
					}
				}
			}
			if !clipNear(c.Duration, demo.Duration) {
				t.Errorf("Duration %v, want %v", c.Duration, demo.Duration)
			}
		})
	}
}

// clipBadInput is a file that LoadClip must refuse.
type clipBadInput struct {
	name string
	data []byte
	want string // in the error
}

// clipBadInputs are the error cases, also seeds of FuzzLoadClip.
func clipBadInputs(t testing.TB) []clipBadInput {
	demo := clipReadDemo(t)
	mdat := bytes.Index(demo, []byte("mdat")) - 4
	return []clipBadInput{
		{"empty", nil, "no moov"},
		{"not mp4", []byte("this is not an mp4 file, not at all"), "decode mp4"},
		{"truncated moov", demo[:3000], "decode mp4"},
		{"no mdat", demo[:mdat], "outside"},
		{"truncated mdat", demo[:len(demo)-1000], "outside"},
		{"no tracks", clipInit(t, nil), "no video or audio track"},
		{"AC-3", clipInit(t, func(init *mp4.InitSegment) error {
			return init.AddEmptyTrack(48000, "audio", "und").SetAC3Descriptor(&mp4.Dac3Box{ACMod: 2})
		}), `"ac-3"`},
		{"VP9", clipInit(t, func(init *mp4.InitSegment) error {
			return init.AddEmptyTrack(90000, "video", "und").SetVPxDescriptor("vp09", &mp4.VppCBox{Version: 1}, 640, 360)
		}), `"vp09"`},
		{"HE-AAC is fine but no samples", clipInit(t, func(init *mp4.InitSegment) error {
			return init.AddEmptyTrack(48000, "audio", "und").SetAACDescriptor(aac.HEAACv1, 24000)
		}), "no samples"},
	}
}

func TestLoadClipErrors(t *testing.T) {
	for _, tc := range clipBadInputs(t) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadClip(tc.data)
			if err == nil {
				t.Fatalf("got a clip of %d samples, want an error", len(c.Samples))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func FuzzLoadClip(f *testing.F) {
	demo := clipReadDemo(f)
	clip, err := LoadClip(demo)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo)
	f.Add(clipFragment(f, clip, []int{0, 1}))
	flv := flvOf(f, clip)
	f.Add(flv)
	f.Add(flv[:len(flv)/3])
	for _, n := range []int{8, 100, 2000, len(demo) / 2, len(demo) - 1} {
		f.Add(demo[:n])
	}
	for _, tc := range clipBadInputs(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadClip(data)
		if err != nil {
			return
		}
		if len(c.Tracks) == 0 || len(c.Samples) == 0 || c.Duration <= 0 {
			t.Fatalf("clip without content: %d tracks, %d samples, %v", len(c.Tracks), len(c.Samples), c.Duration)
		}
		size := 0
		for i, s := range c.Samples {
			if s.Track < 0 || s.Track >= len(c.Tracks) {
				t.Fatalf("sample %d: track %d of %d", i, s.Track, len(c.Tracks))
			}
			if i > 0 && s.DTS < c.Samples[i-1].DTS {
				t.Fatalf("sample %d: DTS out of order", i)
			}
			size += len(s.AU)
			for _, n := range s.NALUs {
				size += len(n)
			}
		}
		if size > len(data) {
			t.Fatalf("%d bytes of samples from %d bytes of file", size, len(data))
		}
	})
}

// clipNear reports whether two timestamps agree to a millisecond, the
// precision lost by a round trip through another timescale.
func clipNear(a, b time.Duration) bool {
	return (a - b).Abs() <= time.Millisecond
}

// clipTrackSamples returns the samples of one track of c.
func clipTrackSamples(c *Clip, track int) []ClipSample {
	var out []ClipSample
	for _, s := range c.Samples {
		if s.Track == track {
			out = append(out, s)
		}
	}
	return out
}

// clipInit encodes an init segment (a fragmented file without fragments)
// whose tracks addTracks creates.
func clipInit(t testing.TB, addTracks func(*mp4.InitSegment) error) []byte {
	t.Helper()
	init := mp4.CreateEmptyInit()
	if addTracks != nil {
		if err := addTracks(init); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// clipFragment writes the given tracks of c as a fragmented MP4, one
// fragment per second, tracks interleaved in each (so several truns per
// traf), video at 90 kHz and audio at its sample rate.
func clipFragment(t testing.TB, c *Clip, tracks []int) []byte {
	t.Helper()
	timescales := make([]uint32, len(tracks))
	out := clipInit(t, func(init *mp4.InitSegment) error {
		for i, src := range tracks {
			switch codec := c.Tracks[src].Codec.(type) {
			case *codecs.H264:
				timescales[i] = 90000
				trak := init.AddEmptyTrack(timescales[i], "video", "und")
				if err := trak.SetAVCDescriptor("avc1", [][]byte{codec.SPS}, [][]byte{codec.PPS}, true); err != nil {
					return err
				}
			case *codecs.MPEG4Audio:
				timescales[i] = uint32(codec.Config.SampleRate)
				trak := init.AddEmptyTrack(timescales[i], "audio", "und")
				if err := trak.SetAACDescriptor(aac.AAClc, codec.Config.SampleRate); err != nil {
					return err
				}
			}
		}
		return nil
	})

	ticks := func(d time.Duration, track int) int64 {
		return int64(math.Round(d.Seconds() * float64(timescales[track])))
	}
	var frag *mp4.Fragment
	fragEnd := time.Duration(0)
	flush := func() {
		if frag == nil {
			return
		}
		var buf bytes.Buffer
		if err := frag.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes()...)
		frag = nil
	}
	trackIDs := make([]uint32, len(tracks))
	for i := range tracks {
		trackIDs[i] = uint32(i + 1)
	}
	perTrack := make([][]ClipSample, len(tracks))
	next := make([]int, len(tracks))
	for i, src := range tracks {
		perTrack[i] = clipTrackSamples(c, src)
	}
	for _, s := range c.Samples {
		i := -1
		for k, src := range tracks {
			if src == s.Track {
				i = k
			}
		}
		if i < 0 {
			continue
		}
		if frag == nil || s.DTS >= fragEnd {
			flush()
			var err error
			if frag, err = mp4.CreateMultiTrackFragment(uint32(len(out)), trackIDs); err != nil {
				t.Fatal(err)
			}
			fragEnd = s.DTS.Truncate(time.Second) + time.Second
		}
		own := perTrack[i]
		k := next[i]
		next[i]++
		// The last sample lasts until the end of the clip, as in the source.
		end := own[0].DTS + c.Duration
		if k+1 < len(own) {
			end = own[k+1].DTS
		}
		data := s.AU
		flags := mp4.SyncSampleFlags
		if s.NALUs != nil {
			var err error
			if data, err = h264.AVCC(s.NALUs).Marshal(); err != nil {
				t.Fatal(err)
			}
			if !s.Key {
				flags = mp4.NonSyncSampleFlags
			}
		}
		dts := ticks(s.DTS, i)
		err := frag.AddFullSampleToTrack(mp4.FullSample{
			Sample: mp4.Sample{
				Flags:                 flags,
				Dur:                   uint32(ticks(end, i) - dts),
				Size:                  uint32(len(data)),
				CompositionTimeOffset: int32(ticks(s.PTS, i) - dts),
			},
			DecodeTime: uint64(dts),
			Data:       data,
		}, trackIDs[i])
		if err != nil {
			t.Fatal(err)
		}
	}
	flush()
	return out
}

package packager

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

func TestNewErrors(t *testing.T) {
	noop := func(*Segment) {}
	tests := []struct {
		name    string
		cfg     Config
		wantErr error  // when not nil, errors.Is must hold
		wantMsg string // substring of the message
	}{
		{"no OnSegment", Config{Codec: h264Codec(t)}, nil, "OnSegment"},
		{"nil codec", Config{OnSegment: noop}, ErrUnsupportedCodec, "<nil>"},
		{"opus", Config{Codec: &codecs.Opus{ChannelCount: 2}, OnSegment: noop}, ErrUnsupportedCodec, "*codecs.Opus"},
		{"h264 garbage SPS", Config{Codec: &codecs.H264{SPS: []byte{0x67, 0xff}, PPS: []byte{0x68}}, OnSegment: noop}, nil, "SPS"},
		{"h264 PPS as SPS", Config{Codec: &codecs.H264{SPS: mustHex(t, x264PPS), PPS: mustHex(t, x264PPS)}, OnSegment: noop}, nil, "SPS"},
		{"h264 no PPS", Config{Codec: &codecs.H264{SPS: mustHex(t, x264SPS)}, OnSegment: noop}, nil, "PPS"},
		{"h265 garbage SPS", Config{Codec: &codecs.H265{VPS: mustHex(t, x265VPS), SPS: []byte{0x42, 0x01, 0x01}, PPS: mustHex(t, x265PPS)}, OnSegment: noop}, nil, "SPS"},
		{"h265 no VPS", Config{Codec: &codecs.H265{SPS: mustHex(t, x265SPS), PPS: mustHex(t, x265PPS)}, OnSegment: noop}, nil, "VPS"},
		{"aac no sample rate", Config{Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, ChannelCount: 2}}, OnSegment: noop}, nil, "sample rate"},
		{"negative segment", Config{Codec: h264Codec(t), SegmentDuration: -time.Second, OnSegment: noop}, nil, "segment duration"},
		{"negative chunk", Config{Codec: h264Codec(t), ChunkDuration: -time.Second, OnSegment: noop}, nil, "chunk duration"},
		{"chunk below a tick", Config{Codec: aacCodec(t, ascLC48Stereo), ChunkDuration: time.Nanosecond, OnSegment: noop}, nil, "one tick"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded: %+v", tr.Info())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestInfoAndInit(t *testing.T) {
	tests := []struct {
		name  string
		codec codecs.Codec
		want  Info
		entry string // sample entry type
	}{
		{"h264 x264 high", h264Codec(t),
			Info{Codec: "avc1.64001e", Video: true, Width: 640, Height: 360, Timescale: 90000}, "avc1"},
		{"h264 mp4ff", &codecs.H264{SPS: mustHex(t, mp4ffAVCSPS), PPS: mustHex(t, mp4ffAVCPPS)},
			Info{Codec: "avc1.640020", Video: true, Width: 1280, Height: 720, Timescale: 90000}, "avc1"},
		{"h265 x265 main", h265Codec(t),
			Info{Codec: "hvc1.1.6.L93.90", Video: true, Width: 1280, Height: 720, Timescale: 90000}, "hvc1"},
		{"h265 mp4ff main10", &codecs.H265{VPS: mustHex(t, mp4ffHEVCVPS), SPS: mustHex(t, mp4ffHEVCSPS), PPS: mustHex(t, mp4ffHEVCPPS)},
			Info{Codec: "hvc1.2.4.L123.b0", Video: true, Width: 960, Height: 540, Timescale: 90000}, "hvc1"},
		{"aac lc 48k stereo", aacCodec(t, ascLC48Stereo),
			Info{Codec: "mp4a.40.2", SampleRate: 48000, Channels: 2, Timescale: 48000}, "mp4a"},
		{"aac lc 44.1k mono", aacCodec(t, ascLC44Mono),
			Info{Codec: "mp4a.40.2", SampleRate: 44100, Channels: 1, Timescale: 44100}, "mp4a"},
		{"he-aac", aacCodec(t, ascHEAAC),
			Info{Codec: "mp4a.40.5", SampleRate: 48000, Channels: 2, Timescale: 24000}, "mp4a"},
		{"he-aac v2", aacCodec(t, ascHEAACv2),
			Info{Codec: "mp4a.40.29", SampleRate: 48000, Channels: 2, Timescale: 24000}, "mp4a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(Config{Codec: tt.codec, OnSegment: func(*Segment) {}})
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Info(); got != tt.want {
				t.Errorf("Info() = %+v, want %+v", got, tt.want)
			}
			checkInit(t, tr, tt.codec, tt.entry)
		})
	}
}

// checkInit parses the init segment of tr with mp4ff and checks it against
// the codec configuration.
func checkInit(t *testing.T, tr *Track, codec codecs.Codec, entry string) {
	t.Helper()
	is, trex := parseInit(t, tr.Init())
	info := tr.Info()
	if is.Ftyp == nil || is.Ftyp.MajorBrand() != "iso6" {
		t.Fatalf("ftyp missing or wrong major brand")
	}
	brands := strings.Join(is.Ftyp.CompatibleBrands(), ",")
	for _, b := range []string{"iso6", "cmfc", "dash"} {
		if !strings.Contains(brands, b) {
			t.Errorf("compatible brands %q lack %q", brands, b)
		}
	}
	moov := is.Moov
	if len(moov.Traks) != 1 {
		t.Fatalf("%d traks", len(moov.Traks))
	}
	if moov.Mvex.Mehd != nil {
		t.Errorf("mehd present")
	}
	if trex.TrackID != 1 || moov.Trak.Tkhd.TrackID != 1 {
		t.Errorf("track IDs trex %d tkhd %d, want 1", trex.TrackID, moov.Trak.Tkhd.TrackID)
	}
	if got := moov.Trak.Mdia.Mdhd.Timescale; got != info.Timescale {
		t.Errorf("mdhd timescale %d, want %d", got, info.Timescale)
	}
	stsd := moov.Trak.Mdia.Minf.Stbl.Stsd
	if len(stsd.Children) != 1 || stsd.Children[0].Type() != entry {
		t.Fatalf("stsd children %v, want one %s", stsd.Children, entry)
	}
	switch c := codec.(type) {
	case *codecs.H264:
		if w, h := moov.Trak.Tkhd.Width>>16, moov.Trak.Tkhd.Height>>16; int(w) != info.Width || int(h) != info.Height {
			t.Errorf("tkhd %dx%d, Info %dx%d", w, h, info.Width, info.Height)
		}
		// mp4ff's own SPS parser agrees on the size.
		sps, err := avc.ParseSPSNALUnit(c.SPS, false)
		if err != nil {
			t.Fatal(err)
		}
		if int(sps.Width) != info.Width || int(sps.Height) != info.Height {
			t.Errorf("mp4ff size %dx%d, Info %dx%d", sps.Width, sps.Height, info.Width, info.Height)
		}
		avcC := stsd.AvcX.AvcC
		if len(avcC.SPSnalus) != 1 || !bytes.Equal(avcC.SPSnalus[0], c.SPS) ||
			len(avcC.PPSnalus) != 1 || !bytes.Equal(avcC.PPSnalus[0], c.PPS) {
			t.Errorf("avcC parameter sets differ from the codec")
		}
		if avcC.AVCProfileIndication != c.SPS[1] || avcC.AVCLevelIndication != c.SPS[3] {
			t.Errorf("avcC profile/level %d/%d", avcC.AVCProfileIndication, avcC.AVCLevelIndication)
		}
	case *codecs.H265:
		sps, err := hevc.ParseSPSNALUnit(c.SPS)
		if err != nil {
			t.Fatal(err)
		}
		if w, h := sps.ImageSize(); int(w) != info.Width || int(h) != info.Height {
			t.Errorf("mp4ff size %dx%d, Info %dx%d", w, h, info.Width, info.Height)
		}
		hvcC := stsd.HvcX.HvcC
		for _, want := range [][]byte{c.VPS, c.SPS, c.PPS} {
			found := false
			for _, arr := range hvcC.NaluArrays {
				for _, n := range arr.Nalus {
					found = found || bytes.Equal(n, want)
				}
				if arr.Complete() != 1 {
					t.Errorf("hvcC array %d not complete", arr.NaluType())
				}
			}
			if !found {
				t.Errorf("hvcC lacks parameter set %x", want)
			}
		}
	case *codecs.MPEG4Audio:
		mp4a := stsd.Mp4a
		asc, err := c.Config.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig; !bytes.Equal(got, asc) {
			t.Errorf("esds config %x, want %x", got, asc)
		}
		if want := aacChannels(c.Config); int(mp4a.ChannelCount) != want {
			t.Errorf("mp4a channels %d, want %d", mp4a.ChannelCount, want)
		}
		if int(mp4a.SampleRate) != c.Config.SampleRate {
			t.Errorf("mp4a sample rate %d, want %d", mp4a.SampleRate, c.Config.SampleRate)
		}
		if mp4.DecodeSampleFlags(trex.DefaultSampleFlags).SampleIsNonSync {
			t.Errorf("trex default flags mark audio non-sync")
		}
	}
}

func TestInitImmutable(t *testing.T) {
	c := h264Codec(t)
	tr, err := New(Config{Codec: c, OnSegment: func(*Segment) {}})
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(tr.Init())
	c.SPS[len(c.SPS)-1] ^= 0xff // the caller reuses its buffers
	if !bytes.Equal(before, tr.Init()) {
		t.Errorf("init segment changed with the caller's SPS buffer")
	}
}

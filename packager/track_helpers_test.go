package packager

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// Parameter sets from real encoders.
const (
	// ffmpeg -f lavfi -i testsrc2=size=640x360:rate=30 -c:v libx264 -profile:v high
	x264SPS = "6764001eacd940a02ff970110000030001000003003c0f162d96"
	x264PPS = "68ebe3cb22c0"
	// ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -c:v libx265
	x265VPS = "40010c01ffff01600000030090000003000003005d959809"
	x265SPS = "42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003c10"
	x265PPS = "4401c172b46240"
	// mp4ff examples/initcreator
	mp4ffAVCSPS  = "67640020accac05005bb0169e0000003002000000c9c4c000432380008647c12401cb1c31380"
	mp4ffAVCPPS  = "68b5df20"
	mp4ffHEVCVPS = "40010c01ffff022000000300b0000003000003007b18b024"
	mp4ffHEVCSPS = "420101022000000300b0000003000003007ba0078200887db6718b92448053888892cf24a69272c9124922dc91aa48fca223ff000100016a02020201"
	mp4ffHEVCPPS = "4401c0252f053240"

	// AudioSpecificConfigs.
	ascLC48Stereo = "1190"     // AAC LC, 48 kHz, 2 channels
	ascLC44Mono   = "1208"     // AAC LC, 44.1 kHz, 1 channel
	ascHEAAC      = "2b118800" // SBR (explicit): 24 kHz core, 48 kHz output, 2 channels
	ascHEAACv2    = "eb098800" // PS (explicit): 24 kHz core, 48 kHz output, 1 channel coded
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func h264Codec(tb testing.TB) *codecs.H264 {
	return &codecs.H264{SPS: mustHex(tb, x264SPS), PPS: mustHex(tb, x264PPS)}
}

func h265Codec(tb testing.TB) *codecs.H265 {
	return &codecs.H265{VPS: mustHex(tb, x265VPS), SPS: mustHex(tb, x265SPS), PPS: mustHex(tb, x265PPS)}
}

func aacCodec(tb testing.TB, ascHex string) *codecs.MPEG4Audio {
	tb.Helper()
	var conf mpeg4audio.AudioSpecificConfig
	if err := conf.Unmarshal(mustHex(tb, ascHex)); err != nil {
		tb.Fatal(err)
	}
	return &codecs.MPEG4Audio{Config: conf}
}

// collector records what a Track hands out, checking the callback order.
type collector struct {
	tb     testing.TB
	segs   []*Segment
	chunks []*Chunk
	// pending holds the chunks of the segment in progress.
	pending []*Chunk
}

func (c *collector) onChunk(ch *Chunk) {
	c.chunks = append(c.chunks, ch)
	c.pending = append(c.pending, ch)
}

func (c *collector) onSegment(s *Segment) {
	c.tb.Helper()
	if len(c.pending) != len(s.Chunks) {
		c.tb.Errorf("segment %d: %d chunks reported before it, want %d", s.Number, len(c.pending), len(s.Chunks))
	}
	for i, ch := range c.pending {
		if i >= len(s.Chunks) {
			break
		}
		ci := s.Chunks[i]
		if ch.SegmentNumber != s.Number || ch.Index != i || ch.Start != ci.Start ||
			ch.Duration != ci.Duration || ch.Independent != ci.Independent ||
			!bytes.Equal(ch.Data, s.Data[ci.Offset:ci.Offset+ci.Size]) {
			c.tb.Errorf("segment %d: chunk %d does not match its ChunkInfo", s.Number, i)
		}
	}
	c.pending = nil
	c.segs = append(c.segs, s)
}

// newTrack returns a Track reporting to a new collector.
func newTrack(tb testing.TB, cfg Config) (*Track, *collector) {
	tb.Helper()
	c := &collector{tb: tb}
	cfg.OnSegment = c.onSegment
	cfg.OnChunk = c.onChunk
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tr, c
}

// parsedSample is one sample read back with mp4ff.
type parsedSample struct {
	dts, pts int64
	dur      uint32
	sync     bool
	data     []byte
}

// parsedChunk is one moof+mdat read back with mp4ff.
type parsedChunk struct {
	seq     uint32
	tfdt    uint64
	samples []parsedSample
}

// parseInit decodes an init segment and returns it with its trex.
func parseInit(tb testing.TB, data []byte) (*mp4.InitSegment, *mp4.TrexBox) {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("decode init: %v", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Mvex == nil || f.Init.Moov.Mvex.Trex == nil {
		tb.Fatalf("init segment without moov/mvex/trex")
	}
	return f.Init, f.Init.Moov.Mvex.Trex
}

// parseMedia decodes a media segment or chunk with mp4ff.
func parseMedia(tb testing.TB, data []byte, trex *mp4.TrexBox) []parsedChunk {
	tb.Helper()
	chunks, err := decodeMedia(data, trex)
	if err != nil {
		tb.Fatalf("decode media: %v", err)
	}
	return chunks
}

func decodeMedia(data []byte, trex *mp4.TrexBox) ([]parsedChunk, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []parsedChunk
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			fs, err := frag.GetFullSamples(trex)
			if err != nil {
				return nil, err
			}
			pc := parsedChunk{seq: frag.Moof.Mfhd.SequenceNumber, tfdt: frag.Moof.Traf.Tfdt.BaseMediaDecodeTime()}
			for i := range fs {
				s := &fs[i]
				pc.samples = append(pc.samples, parsedSample{
					dts:  int64(s.DecodeTime),
					pts:  s.PresentationTime(),
					dur:  s.Dur,
					sync: s.IsSync(),
					data: s.Data,
				})
			}
			out = append(out, pc)
		}
	}
	return out, nil
}

// videoFrame is one access unit of a synthetic stream.
type videoFrame struct {
	pts, dts time.Duration
	au       [][]byte
	key      bool
}

// videoStream describes a synthetic H.264 or H.265 stream.
type videoStream struct {
	frames   int
	frameDur time.Duration // duration of one frame
	gop      int           // keyframe every gop frames, from frame 0
	msRound  bool          // round timestamps to milliseconds, as RTMP does
	bframes  bool          // I P B B P B B ... in decode order (pts != dts)
	size     int           // slice payload bytes (keyframes: 6x)
	aud      bool          // start each access unit with an AUD
	hevc     bool          // H.265 NAL unit headers
}

// display returns the presentation index of the frame decoded at position j
// of its GOP: with B-frames, decode order I0 P3 B1 B2 P6 B4 B5 ..., the
// frames of an incomplete last group in order.
func (s videoStream) display(j int) int {
	if !s.bframes || j == 0 || j >= s.gop-(s.gop-1)%3 {
		return j
	}
	g, r := (j-1)/3, (j-1)%3
	switch r {
	case 0:
		return 3*g + 3
	case 1:
		return 3*g + 1
	}
	return 3*g + 2
}

// header returns a NAL unit header for the stream's codec: an IDR/IRAP slice,
// a non-IDR slice or an AUD.
func (s videoStream) header(key, aud bool) []byte {
	switch {
	case s.hevc && aud:
		return []byte{35 << 1, 0x01}
	case s.hevc && key:
		return []byte{19 << 1, 0x01} // IDR_W_RADL
	case s.hevc:
		return []byte{1 << 1, 0x01} // TRAIL_R
	case aud:
		return []byte{0x09}
	case key:
		return []byte{0x65}
	}
	return []byte{0x41}
}

// build returns the frames of s in decode order; keyframes carry the
// parameter sets ps before their slice.
func (s videoStream) build(ps ...[]byte) []videoFrame {
	out := make([]videoFrame, 0, s.frames)
	delay := time.Duration(0)
	if s.bframes {
		delay = s.frameDur
	}
	for i := range s.frames {
		key := s.gop > 0 && i%s.gop == 0
		dts := time.Duration(i) * s.frameDur
		pts := dts + delay
		if s.gop > 0 {
			start := i - i%s.gop
			pts = time.Duration(start+s.display(i%s.gop))*s.frameDur + delay
		}
		if s.msRound {
			dts = dts.Round(time.Millisecond)
			pts = pts.Round(time.Millisecond)
		}
		var au [][]byte
		if s.aud {
			au = append(au, append(s.header(false, true), 0xf0))
		}
		n := s.size
		if key {
			au = append(au, ps...)
			n *= 6
		}
		slice := s.header(key, false)
		for j := range n {
			slice = append(slice, byte(i+j))
		}
		au = append(au, slice)
		out = append(out, videoFrame{pts: pts, dts: dts, au: au, key: key})
	}
	return out
}

// lengthPrefixed returns the mdat form of the NAL units of au that the
// packager keeps.
func lengthPrefixed(au [][]byte, hevc bool) []byte {
	var b []byte
	for _, n := range au {
		if len(n) == 0 || (!hevc && n[0]&0x1f == 9) || (hevc && (n[0]>>1)&0x3f == 35) {
			continue
		}
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// checkSegments verifies what holds for every output of a Track: numbering,
// chunk layout, mfhd sequence numbers, decode order and, when contiguous is
// set, tfdt continuity (each sample and segment starts where the previous one
// ends). It returns all samples in order.
func checkSegments(tb testing.TB, tr *Track, segs []*Segment, firstNumber uint64, contiguous bool) []parsedSample {
	tb.Helper()
	_, trex := parseInit(tb, tr.Init())
	var (
		all     []parsedSample
		seq     uint32
		prevEnd int64 = -1 // decode end of the previous sample
	)
	for i, s := range segs {
		if contiguous && i > 0 && s.Start != segs[i-1].Start+segs[i-1].Duration {
			tb.Errorf("segment %d: Start %d, previous ends at %d", i, s.Start, segs[i-1].Start+segs[i-1].Duration)
		}
		if s.Number != firstNumber+uint64(i) {
			tb.Errorf("segment %d: Number %d, want %d", i, s.Number, firstNumber+uint64(i))
		}
		if s.Timescale != tr.Info().Timescale {
			tb.Errorf("segment %d: Timescale %d", i, s.Timescale)
		}
		if !s.Independent {
			tb.Errorf("segment %d: not independent", i)
		}
		// ChunkInfo covers Data exactly.
		off := 0
		var dur int64
		for j, ci := range s.Chunks {
			if ci.Offset != off || ci.Size <= 0 {
				tb.Errorf("segment %d chunk %d: offset %d size %d, want offset %d", i, j, ci.Offset, ci.Size, off)
			}
			off += ci.Size
			dur += ci.Duration
			if contiguous && j > 0 && ci.Start != s.Chunks[j-1].Start+s.Chunks[j-1].Duration {
				tb.Errorf("segment %d chunk %d: start %d not continuous", i, j, ci.Start)
			}
		}
		if off != len(s.Data) {
			tb.Errorf("segment %d: chunks cover %d of %d bytes", i, off, len(s.Data))
		}
		if dur != s.Duration {
			tb.Errorf("segment %d: chunk durations sum to %d, Duration %d", i, dur, s.Duration)
		}
		pcs := parseMedia(tb, s.Data, trex)
		if len(pcs) != len(s.Chunks) {
			tb.Fatalf("segment %d: %d fragments parsed, %d chunks reported", i, len(pcs), len(s.Chunks))
		}
		n := 0
		var sdur int64
		for j, pc := range pcs {
			seq++
			if pc.seq != seq {
				tb.Errorf("segment %d chunk %d: mfhd sequence %d, want %d", i, j, pc.seq, seq)
			}
			if int64(pc.tfdt) != s.Chunks[j].Start {
				tb.Errorf("segment %d chunk %d: tfdt %d, ChunkInfo.Start %d", i, j, pc.tfdt, s.Chunks[j].Start)
			}
			if len(pc.samples) == 0 {
				tb.Errorf("segment %d chunk %d: empty", i, j)
				continue
			}
			if pc.samples[0].sync != s.Chunks[j].Independent {
				tb.Errorf("segment %d chunk %d: Independent %v, first sample sync %v", i, j, s.Chunks[j].Independent, pc.samples[0].sync)
			}
			for _, ps := range pc.samples {
				switch {
				case prevEnd < 0:
				case contiguous && ps.dts != prevEnd:
					tb.Errorf("segment %d chunk %d: decode time %d, previous sample ends at %d", i, j, ps.dts, prevEnd)
				case ps.dts < prevEnd:
					tb.Errorf("segment %d chunk %d: decode time %d overlaps previous sample ending at %d", i, j, ps.dts, prevEnd)
				}
				if ps.dur == 0 {
					tb.Errorf("segment %d chunk %d: sample with zero duration", i, j)
				}
				prevEnd = ps.dts + int64(ps.dur)
				sdur += int64(ps.dur)
				n++
			}
			all = append(all, pc.samples...)
		}
		if j0 := pcs[0]; int64(j0.tfdt) != s.Start {
			tb.Errorf("segment %d: tfdt %d, Start %d", i, j0.tfdt, s.Start)
		}
		if !pcs[0].samples[0].sync {
			tb.Errorf("segment %d: first sample not sync", i)
		}
		if n != s.Samples {
			tb.Errorf("segment %d: %d samples parsed, Samples %d", i, n, s.Samples)
		}
		if sdur != s.Duration {
			tb.Errorf("segment %d: sample durations sum to %d, Duration %d", i, sdur, s.Duration)
		}
	}
	return all
}

package packager

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// fuzzReader hands out the bytes of a fuzz input, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) more() bool { return len(r.b) > 0 }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *fuzzReader) int16() int16 { return int16(uint16(r.byte())<<8 | uint16(r.byte())) }

func (r *fuzzReader) int64() int64 {
	var b [8]byte
	copy(b[:], r.bytes(8))
	return int64(binary.BigEndian.Uint64(b[:]))
}

// fuzzDurations derives segment and chunk durations from one byte, so that
// short inputs still cross segment and chunk boundaries.
func fuzzDurations(b byte) (seg, chunk time.Duration) {
	seg = time.Duration(b%8+1) * 100 * time.Millisecond
	return seg, seg / time.Duration(b>>3%4+1)
}

// Fuzz video input: a config byte, then access units:
//
//	flags: bit 7: absolute dts (8 bytes follow, any time.Duration), else a
//	       dts delta in ms (int16); bits 0-1: NAL unit count - 1
//	pts - dts in ms (int16)
//	per NAL unit: length (byte, % 64) and that many bytes
func encodeFuzzVideo(cfg byte, frames []videoFrame) []byte {
	out := []byte{cfg}
	prev := time.Duration(0)
	for _, f := range frames {
		au := f.au
		if len(au) > 4 {
			au = au[:4]
		}
		delta := (f.dts - prev) / time.Millisecond
		prev += delta * time.Millisecond
		out = append(out, byte(len(au)-1), byte(uint16(delta)>>8), byte(delta))
		cto := (f.pts - f.dts) / time.Millisecond
		out = append(out, byte(uint16(cto)>>8), byte(cto))
		for _, n := range au {
			n = n[:min(len(n), 63)]
			out = append(out, byte(len(n)))
			out = append(out, n...)
		}
	}
	return out
}

func FuzzWriteVideo(f *testing.F) {
	h264 := h264Codec(f)
	h265 := h265Codec(f)
	for i, s := range []videoStream{
		{frames: 40, frameDur: time.Second / 30, gop: 10, size: 4},
		{frames: 40, frameDur: time.Second / 30, gop: 15, size: 4, bframes: true, aud: true},
		{frames: 30, frameDur: time.Second / 25, gop: 5, size: 2, msRound: true},
	} {
		f.Add(encodeFuzzVideo(byte(i), s.build(h264.SPS, h264.PPS)), false)
		s.hevc = true
		f.Add(encodeFuzzVideo(byte(i*9), s.build(h265.VPS, h265.SPS, h265.PPS)), true)
	}
	// Timestamp extremes: absolute dts of MinInt64, MaxInt64 and a jump.
	f.Add([]byte{0, 0x80, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x65, 0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0x41}, false)
	f.Add([]byte{3, 0, 0, 0, 0, 0, 2, 0x65, 1, 0x80, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 0x41, 0, 0, 0, 0, 1, 0x41}, false)

	f.Fuzz(func(t *testing.T, data []byte, hevc bool) {
		r := &fuzzReader{b: data}
		seg, chunk := fuzzDurations(r.byte())
		var codec codecs.Codec = h264
		if hevc {
			codec = h265
		}
		var segs []*Segment
		tr, err := New(Config{Codec: codec, SegmentDuration: seg, ChunkDuration: chunk,
			OnSegment: func(s *Segment) { segs = append(segs, s) }})
		if err != nil {
			t.Fatal(err)
		}
		var dts time.Duration
		for r.more() {
			flags := r.byte()
			if flags&0x80 != 0 {
				dts = time.Duration(r.int64())
			} else {
				dts += time.Duration(r.int16()) * time.Millisecond
			}
			pts := dts + time.Duration(r.int16())*time.Millisecond
			au := make([][]byte, int(flags&3)+1)
			for i := range au {
				au[i] = r.bytes(int(r.byte() % 64))
			}
			if err := tr.WriteVideo(pts, dts, au); err != nil {
				t.Fatalf("WriteVideo: %v", err)
			}
		}
		tr.Flush()
		checkSegments(t, tr, segs, 0, false)
	})
}

// Fuzz audio input: a config byte, then frames: pts delta in ms (int16), or
// with a 0x7fff delta an absolute pts (8 bytes); a length byte and that many
// bytes.
func encodeFuzzAudio(cfg byte, frames []audioFrame) []byte {
	out := []byte{cfg}
	prev := time.Duration(0)
	for _, f := range frames {
		delta := (f.pts - prev) / time.Millisecond
		prev += delta * time.Millisecond
		au := f.au[:min(len(f.au), 255)]
		out = append(out, byte(uint16(delta)>>8), byte(delta), byte(len(au)))
		out = append(out, au...)
	}
	return out
}

func FuzzWriteAudio(f *testing.F) {
	ascs := []string{ascLC48Stereo, ascLC44Mono, ascHEAAC, ascHEAACv2}
	for i := range ascs {
		f.Add(encodeFuzzAudio(byte(i), audioStream(60, 48000, 0, nil)))
	}
	f.Add(encodeFuzzAudio(1, audioStream(60, 44100, 0, func(i int) time.Duration {
		return time.Duration(i/20) * 300 * time.Millisecond
	})))
	f.Add([]byte{0, 0x7f, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0xaa, 0, 0, 1, 0xbb})

	cands := make([]codecs.Codec, len(ascs))
	for i, a := range ascs {
		cands[i] = aacCodec(f, a)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{b: data}
		cfg := r.byte()
		seg, chunk := fuzzDurations(cfg)
		var segs []*Segment
		tr, err := New(Config{Codec: cands[int(cfg)%len(cands)], SegmentDuration: seg, ChunkDuration: chunk,
			OnSegment: func(s *Segment) { segs = append(segs, s) }})
		if err != nil {
			t.Fatal(err)
		}
		var pts time.Duration
		for r.more() {
			delta := r.int16()
			if delta == 0x7fff {
				pts = time.Duration(r.int64())
			} else {
				pts += time.Duration(delta) * time.Millisecond
			}
			if err := tr.WriteAudio(pts, r.bytes(int(r.byte()))); err != nil {
				t.Fatalf("WriteAudio: %v", err)
			}
		}
		tr.Flush()
		checkSegments(t, tr, segs, 0, false)
	})
}

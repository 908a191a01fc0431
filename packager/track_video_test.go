package packager

import (
	"bytes"
	"errors"
	"math"

	"github.com/golivestream/live/internal/mediatime"

	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// writeFrames feeds frames to tr.
func writeFrames(tb testing.TB, tr *Track, frames []videoFrame) {
	tb.Helper()
	for i, f := range frames {
		if err := tr.WriteVideo(f.pts, f.dts, f.au); err != nil {
			tb.Fatalf("frame %d: %v", i, err)
		}
	}
}

// expectSamples compares the samples read back with the frames that should
// have been kept: exact decode and presentation times, durations, sync flags
// and data.
func expectSamples(tb testing.TB, got []parsedSample, want []videoFrame, hevc bool) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		dts, pts := mediatime.Ticks(w.dts, VideoTimescale), mediatime.Ticks(w.pts, VideoTimescale)
		var dur int64
		switch {
		case i+1 < len(want):
			dur = mediatime.Ticks(want[i+1].dts, VideoTimescale) - dts
		case i > 0:
			dur = dts - mediatime.Ticks(want[i-1].dts, VideoTimescale)
		default:
			dur = 3000
		}
		if g.dts != dts || g.pts != pts || int64(g.dur) != dur || g.sync != w.key {
			tb.Errorf("sample %d: dts %d pts %d dur %d sync %v, want %d %d %d %v",
				i, g.dts, g.pts, g.dur, g.sync, dts, pts, dur, w.key)
		}
		if !bytes.Equal(g.data, lengthPrefixed(w.au, hevc)) {
			tb.Errorf("sample %d: data differs", i)
		}
	}
}

func TestVideoSegmentation(t *testing.T) {
	const fps30 = time.Second / 30
	tests := []struct {
		name        string
		stream      videoStream
		segDur      time.Duration
		firstNumber uint64
		wantSeg     time.Duration // duration of every segment
		wantChunks  int           // chunks per segment, 0: not checked
	}{
		{"gop 1s", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100}, 0, 0, time.Second, 4},
		{"gop 2s", videoStream{frames: 300, frameDur: fps30, gop: 60, size: 100}, 0, 7, 2 * time.Second, 8},
		{"gop 0.5s", videoStream{frames: 300, frameDur: fps30, gop: 15, size: 100}, 0, 0, time.Second, 4},
		{"gop 1.5s", videoStream{frames: 360, frameDur: fps30, gop: 45, size: 100}, 0, 0, 1500 * time.Millisecond, 0},
		{"gop 1s target 2s", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100}, 2 * time.Second, 1, 2 * time.Second, 8},
		{"ms rounded", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100, msRound: true}, 0, 0, time.Second, 4},
		{"29.97 fps", videoStream{frames: 300, frameDur: time.Second * 1001 / 30000, gop: 30, size: 100}, 0, 0, time.Second * 1001 / 1000, 4},
		{"25 fps", videoStream{frames: 250, frameDur: time.Second / 25, gop: 25, size: 100}, 0, 0, time.Second, 4},
		{"60 fps", videoStream{frames: 600, frameDur: time.Second / 60, gop: 60, size: 100}, 0, 0, time.Second, 4},
		{"b-frames", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100, bframes: true}, 0, 0, time.Second, 4},
		{"b-frames ms rounded", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100, bframes: true, msRound: true}, 0, 0, time.Second, 4},
		{"with AUD", videoStream{frames: 90, frameDur: fps30, gop: 30, size: 100, aud: true}, 0, 0, time.Second, 4},
		{"h265", videoStream{frames: 300, frameDur: fps30, gop: 30, size: 100, hevc: true, aud: true, bframes: true}, 0, 0, time.Second, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SegmentDuration: tt.segDur, FirstNumber: tt.firstNumber}
			var frames []videoFrame
			if tt.stream.hevc {
				c := h265Codec(t)
				cfg.Codec = c
				frames = tt.stream.build(c.VPS, c.SPS, c.PPS)
			} else {
				c := h264Codec(t)
				cfg.Codec = c
				frames = tt.stream.build(c.SPS, c.PPS)
			}
			tr, col := newTrack(t, cfg)
			writeFrames(t, tr, frames)
			tr.Flush()

			samples := checkSegments(t, tr, col.segs, tt.firstNumber, true)
			expectSamples(t, samples, frames, tt.stream.hevc)

			frame := mediatime.Ticks(tt.stream.frameDur, VideoTimescale)
			want := mediatime.Ticks(tt.wantSeg, VideoTimescale)
			total := int64(0)
			for i, s := range col.segs {
				total += s.Duration
				if d := s.Duration - want; d > frame || d < -frame {
					t.Errorf("segment %d: duration %d, want %d ± %d", i, s.Duration, want, frame)
				}
				if tt.wantChunks > 0 && len(s.Chunks) != tt.wantChunks {
					t.Errorf("segment %d: %d chunks, want %d", i, len(s.Chunks), tt.wantChunks)
				}
				checkChunkDurations(t, s, mediatime.Ticks(defaultChunkDuration, VideoTimescale), frame+1)
			}
			if wantN := (len(frames) + int(want/frame) - 1) / int(want/frame); len(col.segs) != wantN {
				t.Errorf("%d segments, want %d", len(col.segs), wantN)
			}
		})
	}
}

// checkChunkDurations checks that every chunk but the last of s reached the
// target duration and exceeds it by less than one sample.
func checkChunkDurations(tb testing.TB, s *Segment, target, maxSample int64) {
	tb.Helper()
	for i, c := range s.Chunks {
		last := i == len(s.Chunks)-1
		if (!last && c.Duration < target) || c.Duration >= target+maxSample {
			tb.Errorf("segment %d chunk %d: duration %d, target %d", s.Number, i, c.Duration, target)
		}
	}
}

func TestVideoDropsBeforeKeyframe(t *testing.T) {
	const fd = time.Second / 30
	c := h264Codec(t)
	frames := videoStream{frames: 70, frameDur: fd, gop: 30, size: 50}.build(c.SPS, c.PPS)
	// Frame 0 (a keyframe) gets a negative dts, frames 1..29 have no
	// keyframe before them: the stream starts at frame 30.
	for i := range frames {
		frames[i].dts -= 5 * fd
		frames[i].pts -= 5 * fd
	}
	tr, col := newTrack(t, Config{Codec: c})
	writeFrames(t, tr, frames)
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, true)
	expectSamples(t, samples, frames[30:], false)
	if got, want := col.segs[0].Start, mediatime.Ticks(25*fd, VideoTimescale); got != want {
		t.Errorf("first segment starts at %d, want %d", got, want)
	}
}

func TestVideoSkipsAccessUnitsWithoutVCL(t *testing.T) {
	c := h264Codec(t)
	frames := videoStream{frames: 60, frameDur: time.Second / 30, gop: 30, size: 50}.build(c.SPS, c.PPS)
	run := func(extra bool) [][]byte {
		tr, col := newTrack(t, Config{Codec: c})
		for i, f := range frames {
			if extra && i%7 == 3 {
				// Mid-stream configuration, SEI only, AUD only, empty.
				for _, au := range [][][]byte{{c.SPS, c.PPS}, {{0x06, 0x05, 0x01, 0x80}}, {{0x09, 0xf0}}, {}, {{}}} {
					if err := tr.WriteVideo(f.pts, f.dts, au); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := tr.WriteVideo(f.pts, f.dts, f.au); err != nil {
				t.Fatal(err)
			}
		}
		tr.Flush()
		checkSegments(t, tr, col.segs, 0, true)
		var out [][]byte
		for _, s := range col.segs {
			out = append(out, s.Data)
		}
		return out
	}
	plain, extra := run(false), run(true)
	if len(plain) != len(extra) {
		t.Fatalf("%d segments with extra access units, %d without", len(extra), len(plain))
	}
	for i := range plain {
		if !bytes.Equal(plain[i], extra[i]) {
			t.Errorf("segment %d differs", i)
		}
	}
}

func TestVideoNonIncreasingDTS(t *testing.T) {
	c := h264Codec(t)
	key := [][]byte{c.SPS, c.PPS, {0x65, 1, 2, 3}}
	p := [][]byte{{0x41, 4, 5, 6}}
	ms := time.Millisecond
	tests := []struct {
		dts     time.Duration
		au      [][]byte
		wantDTS int64
	}{
		{0, key, 0},
		{33 * ms, p, 2970},
		{33 * ms, p, 2971},  // repeated
		{20 * ms, p, 2972},  // backwards
		{-50 * ms, p, 2973}, // negative after the start
		{100 * ms, p, 9000},
		{133 * ms, p, 11970},
	}
	tr, col := newTrack(t, Config{Codec: c})
	for _, tt := range tests {
		if err := tr.WriteVideo(tt.dts, tt.dts, tt.au); err != nil {
			t.Fatal(err)
		}
	}
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, true)
	if len(samples) != len(tests) {
		t.Fatalf("%d samples, want %d", len(samples), len(tests))
	}
	for i, tt := range tests {
		if samples[i].dts != tt.wantDTS {
			t.Errorf("sample %d: dts %d, want %d", i, samples[i].dts, tt.wantDTS)
		}
		// The presentation time is kept: the composition offset absorbs
		// the correction.
		if want := mediatime.Ticks(tt.dts, VideoTimescale); samples[i].pts != want {
			t.Errorf("sample %d: pts %d, want %d", i, samples[i].pts, want)
		}
	}
}

func TestVideoTimestampJump(t *testing.T) {
	c := h264Codec(t)
	key := [][]byte{c.SPS, c.PPS, {0x65, 1}}
	p := [][]byte{{0x41, 2}}
	jump := 20 * time.Hour // more than 2^32 ticks at 90 kHz
	writes := []struct {
		dts time.Duration
		au  [][]byte
	}{
		{0, key}, {time.Second / 30, p}, {jump, p}, {jump + time.Second/30, p}, {jump + time.Second, key}, {jump + time.Second + time.Second/30, p},
	}
	tr, col := newTrack(t, Config{Codec: c})
	for _, w := range writes {
		if err := tr.WriteVideo(w.dts, w.dts, w.au); err != nil {
			t.Fatal(err)
		}
	}
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, false)
	if len(samples) != len(writes) {
		t.Fatalf("%d samples, want %d", len(samples), len(writes))
	}
	for i, w := range writes {
		if want := mediatime.Ticks(w.dts, VideoTimescale); samples[i].dts != want {
			t.Errorf("sample %d: dts %d, want %d", i, samples[i].dts, want)
		}
	}
}

func TestFlush(t *testing.T) {
	c := h264Codec(t)
	key := [][]byte{c.SPS, c.PPS, {0x65, 1}}
	p := [][]byte{{0x41, 2}}
	tests := []struct {
		name     string
		dts      []time.Duration
		wantSegs int
		wantLast uint32 // duration of the last sample
	}{
		{"nothing", nil, 0, 0},
		{"one frame", []time.Duration{0}, 1, 3000},
		{"three frames", []time.Duration{0, 3003 * time.Second / 90000, 6006 * time.Second / 90000}, 1, 3003},
		{"after a cut", []time.Duration{0, 500 * time.Millisecond, time.Second, time.Second + 40*time.Millisecond}, 2, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, col := newTrack(t, Config{Codec: c})
			for i, d := range tt.dts {
				au := p
				if d%time.Second == 0 {
					au = key
				}
				if err := tr.WriteVideo(d, d, au); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if len(col.segs) != tt.wantSegs-min(tt.wantSegs, 1) {
				t.Errorf("%d segments before Flush", len(col.segs))
			}
			tr.Flush()
			tr.Flush()
			if len(col.segs) != tt.wantSegs {
				t.Fatalf("%d segments, want %d", len(col.segs), tt.wantSegs)
			}
			samples := checkSegments(t, tr, col.segs, 0, true)
			if len(samples) != len(tt.dts) {
				t.Errorf("%d samples, want %d", len(samples), len(tt.dts))
			}
			if len(samples) > 0 && samples[len(samples)-1].dur != tt.wantLast {
				t.Errorf("last sample duration %d, want %d", samples[len(samples)-1].dur, tt.wantLast)
			}
			if err := tr.WriteVideo(time.Hour, time.Hour, key); !errors.Is(err, ErrClosed) {
				t.Errorf("WriteVideo after Flush: %v, want ErrClosed", err)
			}
		})
	}
}

func TestWrongMedia(t *testing.T) {
	tests := []struct {
		name  string
		codec codecs.Codec
		write func(*Track) error
	}{
		{"audio on video track", h264Codec(t), func(tr *Track) error { return tr.WriteAudio(0, []byte{1}) }},
		{"video on audio track", aacCodec(t, ascLC48Stereo), func(tr *Track) error { return tr.WriteVideo(0, 0, [][]byte{{0x65}}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTrack(t, Config{Codec: tt.codec})
			if err := tt.write(tr); !errors.Is(err, ErrWrongMedia) {
				t.Errorf("got %v, want ErrWrongMedia", err)
			}
		})
	}
}

func TestVideoCompositionOffsetClamp(t *testing.T) {
	c := h264Codec(t)
	tr, col := newTrack(t, Config{Codec: c})
	if err := tr.WriteVideo(10*time.Hour, 0, [][]byte{{0x65, 1}}); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, true)
	if len(samples) != 1 || samples[0].pts != math.MaxInt32 {
		t.Errorf("samples %+v, want one with pts %d", samples, math.MaxInt32)
	}
}

func TestScanVideo(t *testing.T) {
	h264, h265 := h264Codec(t), h265Codec(t)
	hevc := func(typ byte) []byte { return []byte{typ << 1, 0x01, 0xaa} }
	tests := []struct {
		name      string
		codec     codecs.Codec
		au        [][]byte
		vcl, sync bool
		size      int64
	}{
		{"h264 idr", h264, [][]byte{{0x65, 1}}, true, true, 6},
		{"h264 non-idr", h264, [][]byte{{0x41, 1}}, true, false, 6},
		{"h264 sps pps only", h264, [][]byte{h264.SPS, h264.PPS}, false, false, int64(8 + len(h264.SPS) + len(h264.PPS))},
		{"h264 aud and filler dropped", h264, [][]byte{{0x09, 0xf0}, {0x0c, 0xff, 0xff}, {0x41, 1}}, true, false, 6},
		{"h264 empty nalus", h264, [][]byte{{}, nil, {0x41}}, true, false, 5},
		{"h265 idr_w_radl", h265, [][]byte{hevc(19)}, true, true, 7},
		{"h265 cra", h265, [][]byte{hevc(21)}, true, true, 7},
		{"h265 bla", h265, [][]byte{hevc(16)}, true, true, 7},
		{"h265 trail", h265, [][]byte{hevc(1)}, true, false, 7},
		{"h265 rasl", h265, [][]byte{hevc(8)}, true, false, 7},
		{"h265 vps sps pps", h265, [][]byte{h265.VPS, h265.SPS, h265.PPS}, false, false,
			int64(12 + len(h265.VPS) + len(h265.SPS) + len(h265.PPS))},
		{"h265 aud and filler dropped", h265, [][]byte{hevc(35), hevc(38), hevc(1)}, true, false, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTrack(t, Config{Codec: tt.codec})
			size, vcl, sync := tr.scanVideo(tt.au)
			if size != tt.size || vcl != tt.vcl || sync != tt.sync {
				t.Errorf("scanVideo = %d, %v, %v; want %d, %v, %v", size, vcl, sync, tt.size, tt.vcl, tt.sync)
			}
		})
	}
}

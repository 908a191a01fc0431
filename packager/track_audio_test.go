package packager

import (
	"bytes"
	"testing"
	"time"

	"github.com/golivestream/live/internal/mediatime"
)

// audioFrame is one AAC access unit of a synthetic stream.
type audioFrame struct {
	pts time.Duration
	au  []byte
}

// audioStream returns n AAC frames at rate whose timestamps are rounded to
// milliseconds (as in RTMP) plus jitter(i), after an offset.
func audioStream(n, rate int, offset time.Duration, jitter func(i int) time.Duration) []audioFrame {
	out := make([]audioFrame, n)
	for i := range out {
		pts := offset + (time.Duration(i) * 1024 * time.Second / time.Duration(rate)).Round(time.Millisecond)
		if jitter != nil {
			pts += jitter(i)
		}
		au := make([]byte, 200+i%50)
		for j := range au {
			au[j] = byte(i * j)
		}
		out[i] = audioFrame{pts: pts, au: au}
	}
	return out
}

func writeAudio(tb testing.TB, tr *Track, frames []audioFrame) {
	tb.Helper()
	for i, f := range frames {
		if err := tr.WriteAudio(f.pts, f.au); err != nil {
			tb.Fatalf("frame %d: %v", i, err)
		}
	}
}

func TestAudioTiming(t *testing.T) {
	jitter := func(i int) time.Duration { return time.Duration((i+1)%3-1) * time.Millisecond }
	tests := []struct {
		name   string
		asc    string
		frames []audioFrame
		segDur time.Duration
	}{
		{"48k jitter", ascLC48Stereo, audioStream(500, 48000, 0, jitter), 0},
		{"48k late start", ascLC48Stereo, audioStream(500, 48000, 1234*time.Millisecond, jitter), 0},
		{"44.1k", ascLC44Mono, audioStream(500, 44100, 0, jitter), 0},
		{"he-aac 2s", ascHEAAC, audioStream(500, 24000, 0, jitter), 2 * time.Second},
		{"drift below resync", ascLC48Stereo, audioStream(500, 48000, 0, func(i int) time.Duration {
			return time.Duration(i/5) * time.Millisecond / 2 // drifts to +50 ms
		}), 0},
		{"step below resync", ascLC48Stereo, audioStream(500, 48000, 0, func(i int) time.Duration {
			if i >= 100 {
				return 90 * time.Millisecond
			}
			return 0
		}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, col := newTrack(t, Config{Codec: aacCodec(t, tt.asc), SegmentDuration: tt.segDur})
			writeAudio(t, tr, tt.frames)
			tr.Flush()
			samples := checkSegments(t, tr, col.segs, 0, true)
			if len(samples) != len(tt.frames) {
				t.Fatalf("%d samples, want %d", len(samples), len(tt.frames))
			}
			ts := tr.Info().Timescale
			first := mediatime.Ticks(tt.frames[0].pts, ts)
			for i, s := range samples {
				if s.dur != 1024 || !s.sync || s.dts != first+int64(i)*1024 || !bytes.Equal(s.data, tt.frames[i].au) {
					t.Fatalf("sample %d: dts %d dur %d sync %v, want dts %d dur 1024", i, s.dts, s.dur, s.sync, first+int64(i)*1024)
				}
			}
			segDur := tt.segDur
			if segDur == 0 {
				segDur = time.Second
			}
			seg := mediatime.Ticks(segDur, ts)
			for i, s := range col.segs {
				// Segments after the first start at the first frame at or
				// after a multiple of the segment duration.
				if i > 0 && (s.Start%seg >= 1024 || s.Start%seg < 0) {
					t.Errorf("segment %d starts at %d, not within a frame after a multiple of %d", i, s.Start, seg)
				}
				if i > 0 && i < len(col.segs)-1 && (s.Duration < seg-1024 || s.Duration > seg+1024) {
					t.Errorf("segment %d: duration %d, want %d ± 1024", i, s.Duration, seg)
				}
				checkChunkDurations(t, s, mediatime.Ticks(defaultChunkDuration, ts), 1024)
			}
		})
	}
}

func TestAudioGap(t *testing.T) {
	const gap = 500 * time.Millisecond
	frames := audioStream(300, 48000, 0, func(i int) time.Duration {
		if i >= 100 {
			return gap
		}
		return 0
	})
	tr, col := newTrack(t, Config{Codec: aacCodec(t, ascLC48Stereo)})
	writeAudio(t, tr, frames)
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, false)
	if len(samples) != len(frames) {
		t.Fatalf("%d samples, want %d", len(samples), len(frames))
	}
	if got, want := samples[100].dts, mediatime.Ticks(frames[100].pts, 48000); got != want {
		t.Errorf("first frame after the gap at %d, want %d (resync)", got, want)
	}
	// The gap lies between two segments; each is contiguous in itself.
	cut := -1
	for i, s := range col.segs {
		if i > 0 && s.Start != col.segs[i-1].Start+col.segs[i-1].Duration {
			if cut >= 0 {
				t.Errorf("second discontinuity at segment %d", i)
			}
			cut = i
			if s.Start != samples[100].dts {
				t.Errorf("segment %d starts at %d, want %d", i, s.Start, samples[100].dts)
			}
		}
	}
	if cut < 0 {
		t.Errorf("no segment starts at the gap")
	}
	for i := 101; i < len(samples); i++ {
		if samples[i].dts != samples[i-1].dts+1024 {
			t.Fatalf("sample %d not continuous after resync", i)
		}
	}
}

func TestAudioBackwardJump(t *testing.T) {
	// Frames 100..149 are stamped 500 ms early. Those more than 100 ms
	// earlier than expected (100..118) overlap audio already written and are
	// dropped; 119..149 are close enough and follow on continuously; frame
	// 150, back on time, is 405 ms late for the timeline and resyncs.
	frames := audioStream(300, 48000, 0, func(i int) time.Duration {
		if i >= 100 && i < 150 {
			return -500 * time.Millisecond
		}
		return 0
	})
	tr, col := newTrack(t, Config{Codec: aacCodec(t, ascLC48Stereo)})
	writeAudio(t, tr, frames)
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, false)
	if len(samples) != 281 {
		t.Fatalf("%d samples, want 281", len(samples))
	}
	if want := samples[99].dts + 1024; samples[100].dts != want {
		t.Errorf("frame 119 at %d, want %d", samples[100].dts, want)
	}
	if want := mediatime.Ticks(frames[150].pts, 48000); samples[131].dts != want {
		t.Errorf("frame 150 at %d, want %d", samples[131].dts, want)
	}
}

func TestAudioDropsNegativeStart(t *testing.T) {
	frames := audioStream(100, 48000, -200*time.Millisecond, nil)
	tr, col := newTrack(t, Config{Codec: aacCodec(t, ascLC48Stereo)})
	writeAudio(t, tr, frames)
	if err := tr.WriteAudio(10*time.Second, nil); err != nil {
		t.Errorf("empty frame: %v", err)
	}
	tr.Flush()
	samples := checkSegments(t, tr, col.segs, 0, true)
	firstKept := 0
	for frames[firstKept].pts < 0 {
		firstKept++
	}
	if len(samples) != len(frames)-firstKept {
		t.Fatalf("%d samples, want %d", len(samples), len(frames)-firstKept)
	}
	if samples[0].dts != mediatime.Ticks(frames[firstKept].pts, 48000) {
		t.Errorf("first sample at %d", samples[0].dts)
	}
}

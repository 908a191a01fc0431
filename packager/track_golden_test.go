package packager

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/golivestream/live/internal/mp4test"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(tb testing.TB, name string, got []byte) {
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
		tb.Fatalf("%v (run go test ./packager -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

// TestGolden dumps the init segment and the first media segment of small
// deterministic streams.
func TestGolden(t *testing.T) {
	h264 := h264Codec(t)
	h265 := h265Codec(t)
	small := videoStream{frames: 45, frameDur: time.Second / 30, gop: 15, size: 8, bframes: true, aud: true}
	tests := []struct {
		name  string
		codec codecs.Codec
		write func(*Track)
	}{
		{"h264", h264, func(tr *Track) { writeFrames(t, tr, small.build(h264.SPS, h264.PPS)) }},
		{"h265", h265, func(tr *Track) {
			s := small
			s.hevc = true
			writeFrames(t, tr, s.build(h265.VPS, h265.SPS, h265.PPS))
		}},
		{"aac", aacCodec(t, ascLC48Stereo), func(tr *Track) {
			frames := audioStream(60, 48000, 0, nil)
			for i := range frames {
				frames[i].au = frames[i].au[:4]
			}
			writeAudio(t, tr, frames)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, col := newTrack(t, Config{Codec: tt.codec})
			tt.write(tr)
			tr.Flush()
			if len(col.segs) == 0 {
				t.Fatal("no segment")
			}
			checkGolden(t, tt.name+"_init.golden", mp4test.BoxDump(t, tr.Init()))
			checkGolden(t, tt.name+"_segment.golden", mp4test.BoxDump(t, col.segs[0].Data))
		})
	}
}

package transcode

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/origin"
)

// The SPS and PPS of a 1920x1080 30 fps High profile stream, from x264.
var (
	sps1080 = []byte{0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58}
	pps     = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
)

func newOrigin(t *testing.T) *origin.Server {
	t.Helper()
	o, err := origin.New(origin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// Without ffmpeg, the transcoder warns once and passes streams through.
func TestMissingFFmpeg(t *testing.T) {
	var logs bytes.Buffer
	tc, err := New(Config{
		Origin: newOrigin(t),
		FFmpeg: "/nonexistent/ffmpeg",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if tc.Enabled() {
		t.Error("Enabled() with a missing ffmpeg")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "transcoding is off") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	sess, err := tc.Publish("s", []codecs.Codec{&codecs.H264{SPS: sps1080, PPS: pps}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, ok := sess.(*origin.Session); !ok {
		t.Errorf("Publish returned %T, want the origin's session", sess)
	}
	if st := tc.Status(); len(st) != 0 {
		t.Errorf("Status() = %v, want no jobs", st)
	}
}

func TestProbeSource(t *testing.T) {
	src, err := probeSource(&codecs.H264{SPS: sps1080, PPS: pps})
	if err != nil {
		t.Fatal(err)
	}
	if src.width != 1920 || src.height != 1080 || src.h265 {
		t.Errorf("probeSource = %+v", src)
	}
	if _, err := probeSource(&codecs.H264{SPS: []byte{0x67}, PPS: pps}); err == nil {
		t.Error("probeSource accepted a truncated SPS")
	}
	if _, err := probeSource(&codecs.MPEG4Audio{}); err == nil {
		t.Error("probeSource accepted audio")
	}
}

// Keyframes reach ffmpeg with their parameter sets, copied out of the
// publisher's buffers.
func TestWithParams(t *testing.T) {
	src := source{params: [][]byte{sps1080, pps}}
	idr := []byte{0x65, 1, 2, 3}
	nonIDR := []byte{0x41, 4, 5}
	for _, tc := range []struct {
		name string
		au   [][]byte
		want [][]byte
	}{
		{"keyframe without parameter sets", [][]byte{idr}, [][]byte{sps1080, pps, idr}},
		{"keyframe with them", [][]byte{sps1080, pps, idr}, [][]byte{sps1080, pps, idr}},
		{"other frame", [][]byte{nonIDR}, [][]byte{nonIDR}},
	} {
		key := src.isKey(tc.au)
		got := src.withParams(tc.au, key)
		if !slices.EqualFunc(got, tc.want, bytes.Equal) {
			t.Errorf("%s: withParams = %x, want %x", tc.name, got, tc.want)
		}
		tc.au[len(tc.au)-1][1] = 99 // the publisher reuses its buffer
		if got[len(got)-1][1] == 99 {
			t.Errorf("%s: withParams did not copy", tc.name)
		}
		tc.au[len(tc.au)-1][1] = 1
	}
}

// The command line keeps timestamps, forces keyframes on the timeline's
// segment boundaries, and maps one output per rung.
func TestArgs(t *testing.T) {
	tc := &Transcoder{cfg: Config{Preset: "veryfast", SegmentDuration: time.Second}}
	j := &job{t: tc, rungs: DefaultLadder()}
	args := strings.Join(j.args(2500*time.Millisecond), " ")
	for _, want := range []string{
		"-copyts",
		"-force_key_frames expr:gte(t+2.500000+0.008000,(ceil(2.500000/1.000000-0.008000)+n_forced)*1.000000)",
		"[0:v]split=3[s0][s1][s2];[s0]scale=-2:720,format=yuv420p[o0];[s1]scale=-2:480,format=yuv420p[o1];[s2]scale=-2:240,format=yuv420p[o2]",
		"-map [o0] -map [o1] -map [o2]",
		"-bf 0 -sc_threshold 0",
		"-b:v:0 2500000 -maxrate:v:0 2500000 -bufsize:v:0 2500000",
		"-b:v:2 400000",
		"-enc_time_base 1:90000",
		"-muxdelay 0 -muxpreload 0",
		"-f mpegts pipe:1",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
}

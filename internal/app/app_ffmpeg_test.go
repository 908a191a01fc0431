package app

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

// ffmpegSource returns ffmpeg arguments publishing seconds of a test
// pattern and a tone in real time to url, with extra encoder arguments.
func ffmpegSource(url string, seconds int, extra ...string) []string {
	d := strconv.Itoa(seconds)
	args := []string{
		"-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + d,
	}
	args = append(args, extra...)
	return append(args, "-f", "flv", url)
}

// x264 settings with a keyframe every second and no scene-cut keyframes.
var x264GOP1s = []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p"}

// probePacket is one packet as ffprobe reports it.
type probePacket struct {
	dts float64
	key bool
}

// probe reads a stream back with ffprobe and returns its video and audio
// packets in order.
func probe(t *testing.T, ffprobe, url string) (video, audio []probePacket) {
	t.Helper()
	out, err := runCmd(context.Background(), time.Minute, ffprobe,
		"-v", "error", "-show_entries", "packet=codec_type,dts_time,flags", "-of", "csv=p=0", url)
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		dts, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("ffprobe line %q: %v", line, err)
		}
		p := probePacket{dts: dts, key: strings.HasPrefix(f[2], "K")}
		switch f[0] {
		case "video":
			video = append(video, p)
		case "audio":
			audio = append(audio, p)
		}
	}
	return video, audio
}

// TestFFmpegInterop has ffmpeg publish with libx264 (with B-frames, and
// baseline) and AAC, concurrently, and reads each stream back with ffprobe
// over HLS: every frame arrives, keyframes are one second apart and
// timestamps have no gap. ffprobe's exit code alone would prove nothing.
func TestFFmpegInterop(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}, PoP: &pop.Config{}})
	const seconds, fps = 6, 30

	cases := []struct {
		name string
		args []string
	}{
		{"bframes", append(append([]string{}, x264GOP1s...), "-profile:v", "high", "-bf", "2", "-c:a", "aac", "-b:a", "64k")},
		{"baseline", append(append([]string{}, x264GOP1s...), "-profile:v", "baseline", "-c:a", "aac", "-b:a", "64k")},
	}
	errs := make(chan error, len(cases))
	outs := make([]string, len(cases))
	for i, tc := range cases {
		go func() {
			out, err := runCmd(context.Background(), time.Minute, ffmpeg, ffmpegSource(a.rtmp+tc.name, seconds, tc.args...)...)
			outs[i] = out
			errs <- err
		}()
	}
	for range cases {
		if err := <-errs; err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, strings.Join(outs, "\n"))
		}
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.waitEnded(t, tc.name, 15*time.Second)
			video, audio := probe(t, ffprobe, a.base+"/live/"+tc.name+"/index.m3u8")
			if len(video) != seconds*fps {
				t.Errorf("%d video packets read back, %d published", len(video), seconds*fps)
			}
			// 6 s of 48 kHz AAC in 1024-sample frames, give or take the
			// encoder's priming frame.
			if want := seconds * 48000 / 1024; len(audio) < want-1 || len(audio) > want+2 {
				t.Errorf("%d audio packets read back, about %d published", len(audio), want)
			}
			var lastKey float64 = -1
			for i, p := range video {
				if i > 0 {
					if gap := p.dts - video[i-1].dts; gap <= 0 || gap > 1.5/fps {
						t.Errorf("video packet %d: dts gap %.4f s", i, gap)
					}
				}
				if p.key != (i%fps == 0) {
					t.Errorf("video packet %d: keyframe %v, want every %d frames", i, p.key, fps)
				}
				if p.key {
					if lastKey >= 0 && math.Abs(p.dts-lastKey-1) > 0.5/fps {
						t.Errorf("keyframe at %.3f s, %.3f s after the previous one", p.dts, p.dts-lastKey)
					}
					lastKey = p.dts
				}
			}
			for i := 1; i < len(audio); i++ {
				if gap := audio[i].dts - audio[i-1].dts; gap <= 0 || gap > 1.5*1024/48000 {
					t.Errorf("audio packet %d: dts gap %.4f s", i, gap)
				}
			}
		})
	}
}

// TestVideoSetupChange: a publisher whose picture size changes mid-stream
// without reconnecting (a relay switching sources: ffmpeg copies two
// files of different sizes into one RTMP stream, the new parameter sets
// in-band) is published anew at the switch. The multivariant playlist
// then describes the new size, and players read every frame of it; the
// old size's frames never go out under the new size's init segment.
func TestVideoSetupChange(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	const seconds, fps = 2, 30
	parts := sizedFiles(t, ffmpeg, sized{"320x240", seconds}, sized{"640x360", seconds})
	if out, err := runCmd(context.Background(), time.Minute, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-i", "concat:"+strings.Join(parts, "|"), "-c", "copy", "-f", "flv", a.rtmp+"switch"); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	a.waitEnded(t, "switch", 15*time.Second)

	multivariant := string(mustGet(t, a.base+"/live/switch/index.m3u8"))
	if !strings.Contains(multivariant, "RESOLUTION=640x360") {
		t.Errorf("multivariant playlist after the switch:\n%s", multivariant)
	}
	video, audio := probe(t, ffprobe, a.base+"/live/switch/index.m3u8")
	if len(video) != seconds*fps || len(audio) == 0 {
		t.Errorf("ffprobe read %d video and %d audio packets after the switch, want %d video", len(video), len(audio), seconds*fps)
	}
	out, err := runCmd(context.Background(), time.Minute, ffprobe, "-v", "error", "-select_streams", "v",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", a.base+"/live/switch/index.m3u8")
	if err != nil {
		t.Fatalf("ffprobe frames: %v\n%s", err, out)
	}
	frames := strings.Fields(out)
	for _, line := range frames {
		if !strings.HasPrefix(line, "640,360") {
			t.Fatalf("a decoded frame of %s after the switch, want 640,360", line)
		}
	}
	if len(frames) != seconds*fps {
		t.Errorf("ffprobe decoded %d frames, want %d", len(frames), seconds*fps)
	}
	if n := scrapeValue(mustGet(t, a.base+"/metrics"), "live_ingest_republished_total"); n != 1 {
		t.Errorf("live_ingest_republished_total = %v, want 1", n)
	}
}

// sized is a picture size and a duration of test pattern in it.
type sized struct {
	size    string // WxH
	seconds int
}

// sizedFiles encodes each part, test pattern and tone, into an MPEG-TS
// file of its own, for ffmpeg to concatenate into one stream whose setup
// changes at each file's start.
func sizedFiles(t *testing.T, ffmpeg string, parts ...sized) []string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for i, p := range parts {
		size, file := p.size, filepath.Join(dir, strconv.Itoa(i)+".ts")
		d := strconv.Itoa(p.seconds)
		args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning",
			"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=30:duration=" + d,
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + d}
		args = append(append(args, x264GOP1s...), "-c:a", "aac", file)
		if out, err := runCmd(context.Background(), time.Minute, ffmpeg, args...); err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", size, err, out)
		}
		files = append(files, file)
	}
	return files
}

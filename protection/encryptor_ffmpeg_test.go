package protection

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestFFmpegDecrypts: ffmpeg, an implementation of 'cbcs' decryption that
// shares no code with this package or mp4ff, decodes each encrypted chunk
// of the first segment, given the key, to the same frames as the
// clear chunk. Each chunk goes alone after the init segment: ffmpeg 5.x
// loses track of the sample encryption information of a file's second
// fragment ("subsample size exceeds the packet size left", also seen with
// files that mp4ff and Bento4 encrypt). Skipped where ffmpeg is not
// installed, unless CI is set.
func TestFFmpegDecrypts(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is required in CI")
		}
		t.Skip("ffmpeg not installed")
	}
	v, a := demoClip(t)
	for _, p := range []*packaged{v, a, annexBClip(t, "wpp_slices.h265", true), annexBClip(t, "baseline_slices.h264", false)} {
		t.Run(p.name, func(t *testing.T) {
			e := newEncryptor(t, p, testKey)
			dir := t.TempDir()
			md5s := func(file string, data []byte, args ...string) []byte {
				path := filepath.Join(dir, file)
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				args = append(append([]string{"-hide_banner", "-loglevel", "error"}, args...),
					"-i", path, "-f", "framemd5", "-")
				cmd := exec.CommandContext(ctx, ffmpeg, args...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("ffmpeg %s: %v\n%s", file, err, stderr.Bytes())
				}
				return out
			}
			frames := 0
			for _, c := range p.chunks {
				if c.SegmentNumber > 0 {
					break
				}
				enc, err := e.Encrypt(bytes.Clone(e.Init()), c.Data, testKey)
				if err != nil {
					t.Fatal(err)
				}
				want := md5s("clear.mp4", append(bytes.Clone(p.init), c.Data...))
				got := md5s("enc.mp4", enc, "-decryption_key", hex.EncodeToString(testKey.Value[:]))
				if !bytes.Equal(got, want) {
					t.Fatalf("segment %d chunk %d: ffmpeg decodes other frames:\n%s\nclear:\n%s",
						c.SegmentNumber, c.Index, got, want)
				}
				frames += bytes.Count(want, []byte("\n0,"))
			}
			if frames == 0 {
				t.Error("ffmpeg decoded no frame")
			}
			t.Logf("%d frames decoded alike", frames)
		})
	}
}

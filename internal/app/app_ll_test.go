package app

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

// TestLowLatencyGohlslib: gohlslib's client, which plays LL-HLS (the
// preload hint of each playlist, then the playlist again), reads a
// stream ffmpeg publishes, through the PoP: it takes the low-latency
// path, gets every frame once, in order, without errors.
func TestLowLatencyGohlslib(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	a := startApp(t, Config{Origin: origin.Config{Window: 20 * time.Second}, PoP: &pop.Config{}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const seconds = 20
	published := make(chan error, 1)
	go func() {
		out, err := runCmd(ctx, time.Minute, ffmpeg, ffmpegSource(a.rtmp+"ll", seconds, append(append([]string{}, x264GOP1s...), "-bf", "0", "-c:a", "aac")...)...)
		if err != nil && ctx.Err() == nil {
			t.Logf("ffmpeg: %s", out)
		}
		published <- err
	}()
	a.waitLive(t, "ll", 20*time.Second)

	var mu sync.Mutex
	var dts []int64 // video, in order of arrival
	var parts, decodeErrors int
	c := &gohlslib.Client{
		URI:                       a.base + "/live/ll/index.m3u8",
		OnDownloadPrimaryPlaylist: func(string) {},
		OnDownloadStreamPlaylist:  func(string) {},
		OnDownloadSegment:         func(string) {},
		OnDownloadPart:            func(string) { mu.Lock(); parts++; mu.Unlock() },
		OnDecodeError:             func(err error) { mu.Lock(); decodeErrors++; mu.Unlock(); t.Logf("decode error: %v", err) },
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			if _, ok := tr.Codec.(*codecs.H264); ok {
				c.OnDataH26x(tr, func(_ int64, d int64, _ [][]byte) {
					mu.Lock()
					dts = append(dts, d)
					mu.Unlock()
				})
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1) // buffered: the goroutine ends with the client
	go func() { ended <- c.Wait2() }()
	defer c.Close()
	timer := time.NewTimer(8 * time.Second) // the client plays live: its frames come in real time
	select {
	case err := <-ended:
		t.Fatalf("client ended: %v", err)
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	if parts < 10 {
		t.Errorf("the client fetched %d parts: not the low-latency path", parts)
	}
	if decodeErrors > 0 {
		t.Errorf("%d decode errors", decodeErrors)
	}
	if len(dts) < 5*30 {
		t.Errorf("%d video frames in 8 s, want at least 150", len(dts))
	}
	for i := 1; i < len(dts); i++ {
		if dts[i] <= dts[i-1] {
			t.Fatalf("frame %d: DTS %d after %d: a part came twice or out of order", i, dts[i], dts[i-1])
		}
	}
}

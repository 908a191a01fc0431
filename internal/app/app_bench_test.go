package app

import (
	"context"
	"testing"
	"time"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/publisher"
)

// BenchmarkIngest pushes the demo clip as fast as possible through RTMP
// into an in-process origin: one op is one pass of the 6-s clip, so
// ns/op over 6 s is CPU per stream-second (publisher included).
func BenchmarkIngest(b *testing.B) {
	a := startApp(b, Config{Origin: origin.Config{Window: 30 * time.Second}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, s := range clip.Samples {
		size += int64(len(s.AU))
		for _, n := range s.NALUs {
			size += int64(len(n))
		}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	err = publisher.Publish(context.Background(), publisher.Config{
		URL: a.rtmp + "bench", Clip: clip, Loops: b.N, Speed: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
}

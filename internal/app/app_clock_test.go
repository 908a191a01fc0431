package app

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/publisher"
)

// TestProgramDateTimeIsFirstFrame: the wall-clock time of media time 0
// (PROGRAM-DATE-TIME of the first segment, and so the MPD's
// availabilityStartTime) is when the publisher's first frame reached
// ingest, not when ingest had read the seconds of media it needs to learn
// the tracks (gortmplib's analyze period, 2 s), which would make every
// glass-to-player latency read that much too low.
func TestProgramDateTimeIsFirstFrame(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	t.Cleanup(func() { cancel(); <-done })
	sent := time.Now() // real time: the clip's first frame leaves now
	go func() { done <- publisher.Publish(ctx, publisher.Config{URL: a.rtmp + "clock", Clip: clip}) }()
	a.waitLive(t, "clock", 20*time.Second)

	mvURL := a.origin + "/live/clock/index.m3u8"
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, mvURL)); err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(mvURL)
	var pl playlist.Media
	if err := pl.Unmarshal(mustGet(t, base.ResolveReference(&url.URL{Path: mv.Variants[0].URI}).String())); err != nil {
		t.Fatal(err)
	}
	if len(pl.Segments) == 0 || pl.MediaSequence != 0 || pl.Segments[0].DateTime == nil {
		t.Fatalf("want segment 0 with a PROGRAM-DATE-TIME, got media sequence %d, %d segments", pl.MediaSequence, len(pl.Segments))
	}
	// The first frame's trip to ingest over loopback takes milliseconds;
	// the analyze period would put it 2 s late.
	if d := pl.Segments[0].DateTime.Sub(sent); d < -50*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("PROGRAM-DATE-TIME of segment 0 is %v after the first frame was sent, want within [-50ms, 500ms]", d)
	}
}

package origin

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/golivestream/live/packager"
)

// renditionOf builds a rendition with segments of the given durations (in
// 90 kHz ticks) from start, numbered from first.
func renditionOf(id string, first uint64, start int64, durs ...int64) *rendition {
	r := &rendition{id: id, info: packager.Info{Video: true, Timescale: 90000}}
	for i, d := range durs {
		r.entries = append(r.entries, &entry{listed: true, seg: &packager.Segment{
			Number: first + uint64(i), Start: start, Duration: d, Timescale: 90000,
		}})
		start += d
	}
	return r
}

func TestAligned(t *testing.T) {
	const s = 90000
	for _, tc := range []struct {
		name string
		rs   []*rendition
		want bool
	}{
		{"same cuts and numbers", []*rendition{
			renditionOf("v0", 0, 0, s, s, s, s), renditionOf("v1", 0, 0, s, s, s, s),
		}, true},
		{"one starts later, numbered by time", []*rendition{
			renditionOf("v0", 0, 0, s, s, s, s), renditionOf("v1", 2, 2*s, s, s),
		}, true},
		{"2-s source segments against 1-s ladder", []*rendition{
			renditionOf("v0", 0, 0, 2*s, 2*s), renditionOf("v1", 0, 0, s, s, s, s),
		}, false},
		{"numbers shifted by one", []*rendition{
			renditionOf("v0", 0, 0, s, s, s), renditionOf("v1", 1, 0, s, s, s),
		}, false},
		{"a cut off by one frame", []*rendition{
			renditionOf("v0", 0, 0, s, s, s), renditionOf("v1", 0, 0, s+3000, s-3000, s),
		}, false},
		{"ladder renditions alike, a third differs", []*rendition{
			renditionOf("v1", 0, 0, s, s), renditionOf("v2", 0, 0, s, s), renditionOf("v3", 0, 0, 2*s),
		}, false},
		{"one rendition", []*rendition{renditionOf("v0", 0, 0, 2*s, s)}, true},
	} {
		if got := aligned(tc.rs); got != tc.want {
			t.Errorf("%s: aligned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A publisher whose clock jumps (an encoder restarted without
// reconnecting) keeps a continuous timeline that follows the wall clock;
// a real gap in the media, where the wall clock moved as much, is kept.
func TestTimelineClockJump(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sess, err := srv.Publish("jump", []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	t0 := time.Now()
	ms := time.Millisecond
	for i, step := range []struct {
		pts  time.Duration // the publisher's timestamp
		wall time.Duration // when it arrives
		want time.Duration // where it goes on the timeline
	}{
		{1000 * ms, 0, 0},
		{1020 * ms, 20 * ms, 20 * ms},
		{7 * time.Hour, 40 * ms, 40 * ms},                      // jump forward: follows the wall clock
		{7*time.Hour + 20*ms, 60 * ms, 60 * ms},                // and goes on from there
		{500 * ms, 80 * ms, 80 * ms},                           // jump back
		{500*ms + 6*time.Second, 6080 * ms, 6080 * ms},         // a true 6-s gap: kept
		{500*ms + 6*time.Second + 20*ms, 6100 * ms, 6100 * ms}, // continuous
		{500*ms + 6*time.Second + 40*ms, 6120 * ms, 6120 * ms}, // ...
		{500*ms + 20*time.Second, 6140 * ms, 6140 * ms},        // 14 s ahead in 20 ms: a jump
	} {
		sess.arrival = t0.Add(step.wall)
		if got := sess.timeline(0, step.pts); got != step.want {
			t.Errorf("step %d: %v at %v went to %v, want %v", i, step.pts, step.wall, got, step.want)
		}
	}
	if got := fmt.Sprint(sess.TimelineOffset() + 500*ms + 20*time.Second); got != "6.14s" {
		t.Errorf("TimelineOffset maps the jumped-to timestamp to %s, want 6.14s", got)
	}
}

// Closing a session publishes new snapshots and leaves the ones readers
// may hold as they were: readers use them without a lock. A reader
// records every snapshot it sees while the session closes; afterwards each
// must still list the renditions it listed then.
func TestCloseKeepsSnapshots(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f := publishFeed(t, srv, "keep", time.Second, true)
	f.run(5*time.Second, 0)
	st := srv.stream("keep")

	type seen struct {
		sn         *snapshot
		renditions []*rendition
	}
	var got []seen
	started, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var last *snapshot
		for {
			sn := st.snap.Load()
			if sn == last {
				runtime.Gosched()
				continue
			}
			got = append(got, seen{sn, slices.Clone(sn.renditions)})
			if last == nil {
				close(started)
			}
			if sn.ended {
				return
			}
			last = sn
		}
	}()
	<-started
	f.sess.Close()
	<-done
	for i, s := range got {
		if !slices.Equal(s.sn.renditions, s.renditions) {
			t.Errorf("snapshot %d of %d changed after it was published", i, len(got))
		}
	}
}

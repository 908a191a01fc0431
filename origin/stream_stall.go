package origin

import (
	"time"

	"github.com/golivestream/live/internal/mediatime"
)

// stallAfter is how far a ladder rendition may fall behind the source, in
// media time, before it is stalled: left out of the HLS multivariant
// playlist, its media playlist answering 404. A working ladder trails the
// source by well under one or two segments (encoder latency, and a source
// segment closes only at its next keyframe); a transcoder that restarts
// once comes back after 250 ms of backoff and a second or two of startup.
// One that keeps failing backs off up to 10 s between tries, and players
// left on its rendition would reload a playlist that never grows. Five
// segments, and at least 5 s, tell the two apart with room to spare.
func stallAfter(segment time.Duration) time.Duration {
	return max(5*time.Second, 5*segment)
}

// sourceEnd returns where the newest segment of the stream's source video
// (the renditions the publisher sends) ends on the stream timeline; zero
// without one.
func (s *snapshot) sourceEnd() time.Duration {
	var end time.Duration
	for _, r := range s.renditions {
		if n := len(r.entries); n > 0 && !r.ladder && r.info.Video {
			end = max(end, mediatime.Duration(r.entries[n-1].end(), r.info.Timescale))
		}
	}
	return end
}

// markStallLocked sets c.stalled for snapshot next, c being next's copy
// of a rendition (c.stalled still the previous snapshot's), and logs a
// ladder rendition becoming stalled or coming back. source is next's
// sourceEnd. An ended stream has nothing stalled: its renditions are
// complete as they are. After a publisher resumed the stream, a rung is
// behind by what the source sent since, not by the gap: its transcoder
// starts again with the publisher.
func (st *stream) markStallLocked(next *snapshot, c *rendition, source time.Duration) {
	was := c.stalled
	c.stalled = 0
	if n := len(c.entries); c.ladder && n > 0 && !next.ended {
		lag := source - max(mediatime.Duration(c.entries[n-1].end(), c.info.Timescale), st.sessionBase)
		if lag > stallAfter(st.env.cfg.SegmentDuration) {
			c.stalled = lag
		}
	}
	switch {
	case was == 0 && c.stalled > 0:
		st.env.log.Warn("ladder rendition stalled: left out of the HLS multivariant playlist",
			"stream", st.name, "rendition", c.id, "behind", c.stalled.Round(time.Millisecond))
	case was > 0 && c.stalled == 0 && !next.ended:
		st.env.log.Info("ladder rendition resumed: back in the HLS multivariant playlist",
			"stream", st.name, "rendition", c.id)
	}
}

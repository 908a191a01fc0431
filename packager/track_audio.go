package packager

import (
	"fmt"
	"time"

	"github.com/golivestream/live/internal/mediatime"
)

// WriteAudio adds one raw AAC access unit (no ADTS header).
//
// Every frame lasts 1024 ticks of the sample rate. The first frame decodes at
// mediatime.Ticks(pts); each next one at the previous time plus 1024, which removes the
// millisecond rounding jitter of RTMP timestamps. When pts is more than
// 100 ms later than that expected time (a real gap), the track follows pts:
// the segment in progress ends and the next one starts at pts, leaving a gap
// in the timeline. A frame more than 100 ms earlier than expected would
// overlap media already written and is dropped. Frames with a negative time
// before the first accepted one, and empty frames, are dropped too.
func (t *Track) WriteAudio(pts time.Duration, au []byte) error {
	if t.closed {
		return ErrClosed
	}
	if t.info.Video {
		return fmt.Errorf("write audio: %w", ErrWrongMedia)
	}
	if len(au) == 0 {
		return nil
	}
	if len(au) > maxChunkPayload {
		return fmt.Errorf("write audio: access unit of %d bytes is too large", len(au))
	}

	tm := mediatime.Ticks(pts, t.info.Timescale)
	if !t.started {
		if tm < 0 {
			return nil
		}
		t.started = true
	} else {
		switch diff := tm - t.nextAudio; {
		case diff > t.resyncTicks:
			t.closeSegment()
		case diff < -t.resyncTicks:
			return nil
		default:
			tm = t.nextAudio
			// Every AAC frame is a sync sample: cut at the first frame at
			// or after the boundary.
			if t.segOpen && tm >= t.nextBoundary {
				t.closeSegment()
			}
		}
	}

	if t.chunkOpen && len(t.mdat)+len(au) > maxChunkPayload {
		t.closeChunk()
	}
	if !t.segOpen {
		t.openSegment(tm)
	}
	if !t.chunkOpen {
		t.openChunk(tm, true)
	}
	t.mdat = append(t.mdat, au...)
	t.addSample(uint32(len(au)), true, 0)
	t.finishSample(aacFrameTicks)
	t.nextAudio = tm + aacFrameTicks
	if t.chunkFull(0) {
		t.closeChunk()
	}
	return nil
}

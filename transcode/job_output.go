package transcode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/origin"
)

// speedWindow is the span over which encode speed is measured.
const speedWindow = 5 * time.Second

// collect reads ffmpeg's MPEG-TS output, one H.264 track per rung, and
// writes it to the stream's ladder renditions until EOF. A rendition
// starts at its first keyframe on a segment boundary, so that its first
// segment is whole; the renditions are flushed when collect returns.
func (j *job) collect(r io.Reader) error {
	tr := &mpegts.Reader{R: bufio.NewReaderSize(r, 64<<10)}
	if err := tr.Initialize(); err != nil {
		return fmt.Errorf("read ffmpeg output: %w", err)
	}
	tracks := tr.Tracks()
	if len(tracks) != len(j.rungs) {
		return fmt.Errorf("ffmpeg output has %d tracks, want %d", len(tracks), len(j.rungs))
	}
	outs := make([]*output, len(tracks))
	defer func() {
		for _, o := range outs {
			if o != nil && o.r != nil {
				o.r.Close()
			}
		}
	}()
	for i, t := range tracks {
		if _, ok := t.Codec.(*mpegts.CodecH264); !ok {
			return fmt.Errorf("ffmpeg output track %d is %T, want H.264", i, t.Codec)
		}
		o := &output{
			j: j, slot: i, rung: j.rungs[i],
			framesOut: j.t.metrics.framesOut.WithLabelValues(j.name, j.rungs[i].Name),
			speed:     j.t.metrics.speed.WithLabelValues(j.name, j.rungs[i].Name),
		}
		outs[i] = o
		tr.OnDataH264(t, o.write)
	}
	tr.OnDecodeError(func(err error) { j.log.Debug("ffmpeg output", "error", err) })
	for {
		if err := tr.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read ffmpeg output: %w", err)
		}
	}
}

// output is one rung's track of ffmpeg's output.
type output struct {
	j    *job
	slot int
	rung Rung
	r    *origin.Rendition // nil until the first keyframe on a boundary
	dec  mpegts.TimeDecoder
	// started is set by the first access unit; t0 is its raw dts, which
	// the time decoder counts from.
	started bool
	t0      int64

	// The encode speed is measured from here: media time and wall clock.
	speedDTS  time.Duration
	speedWall time.Time

	framesOut prometheus.Counter
	speed     prometheus.Gauge
}

// write handles one access unit of the rung.
func (o *output) write(rawPTS, rawDTS int64, au [][]byte) error {
	first := !o.started
	if first {
		o.started, o.t0 = true, rawDTS
	}
	// The time decoder unwraps the 33-bit clock, counting from its first
	// value; the stream timeline stays far below 2^33 ticks (26 h).
	dts90 := o.t0 + o.dec.Decode(rawDTS)
	pts90 := dts90 + diff33(rawPTS, rawDTS)
	dts, pts := mediatime.Duration(dts90, 90_000), mediatime.Duration(pts90, 90_000)
	j := o.j
	now := time.Now()
	if first {
		o.speedDTS, o.speedWall = dts, now
	}

	if o.r == nil {
		if !h264.IsRandomAccess(au) || !onBoundary(dts, j.t.cfg.SegmentDuration) {
			return nil
		}
		c, err := h264Codec(au)
		if err != nil {
			return err
		}
		r, err := j.sess.AddRendition(o.slot, c, dts)
		if err != nil {
			return fmt.Errorf("rung %s: %w", o.rung.Name, err)
		}
		o.r = r
		j.log.Info("ladder rendition live", "rung", o.rung.Name, "rendition", r.ID(), "from", dts)
	}
	if err := o.r.WriteVideo(pts, dts, au); err != nil {
		return fmt.Errorf("rung %s: %w", o.rung.Name, err)
	}
	o.framesOut.Inc()
	if wall := now.Sub(o.speedWall); wall >= speedWindow {
		o.speed.Set((dts - o.speedDTS).Seconds() / wall.Seconds())
		o.speedDTS, o.speedWall = dts, now
	}
	return nil
}

// diff33 returns a-b for 33-bit MPEG-TS clock values, which may wrap.
func diff33(a, b int64) int64 {
	const wrap = 1 << 33
	d := (a - b) & (wrap - 1)
	if d >= wrap/2 {
		d -= wrap
	}
	return d
}

// onBoundary reports whether a frame at d starts a segment: it is less
// than a tenth of a segment after a multiple of seg, or at most keySlack
// before one.
func onBoundary(d, seg time.Duration) bool {
	r := d % seg
	return d >= 0 && (r < seg/10 || seg-r <= keySlack)
}

// h264Codec takes the parameter sets out of a keyframe.
func h264Codec(au [][]byte) (*codecs.H264, error) {
	c := &codecs.H264{}
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			c.SPS = nalu
		case h264.NALUTypePPS:
			c.PPS = nalu
		}
	}
	if c.SPS == nil || c.PPS == nil {
		return nil, errors.New("ffmpeg keyframe without SPS and PPS")
	}
	return c, nil
}

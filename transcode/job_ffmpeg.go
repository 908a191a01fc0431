package transcode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
)

// errInputEnded is runOnce's answer when the publisher left and ffmpeg
// encoded everything it was given.
var errInputEnded = errors.New("input ended")

// keySlack is how early a frame may be before a segment boundary and still
// be made the keyframe that starts the segment: less than half a frame at
// 50 fps.
const keySlack = 8 * time.Millisecond

// stallTimeout is how long ffmpeg may go without output while it is being
// fed before it is taken for hung and killed.
const stallTimeout = 10 * time.Second

// args returns ffmpeg's command line for the job's run whose first frame
// is at t0 on the stream timeline.
func (j *job) args(t0 time.Duration) []string {
	return Args(j.t.cfg.Preset, j.t.cfg.SegmentDuration, j.rungs, t0)
}

// Args returns the ffmpeg arguments of a transcode run: MPEG-TS with one
// video track on stdin, whose first frame is at t0 on the stream
// timeline; MPEG-TS with one H.264 track per rung on stdout. bench/
// transcode runs them on a file.
//
// Timestamps are kept (-copyts, no muxer delay) so that the output is on
// the stream timeline too. Keyframes are forced on the first frame at or
// after every segment boundary of the timeline, and nowhere else (no scene
// cuts, no B-frames, constant timestamps: -fps_mode passthrough). The
// expression's t counts from the run's first frame, hence the t0 offset.
//
// Nothing waits for a frame that is not needed (go run
// ./bench/transcode/delay measures each frame's time through ffmpeg: 180
// ms at the median without the two options below, 85 ms with them, for a
// 720p30 source without B-frames). The decoder runs without frame
// threads (-thread_type slice): frame threading holds a frame per
// thread beyond the first. The output's video PES packets give their
// length (-omit_video_pes_length 0): a reader then has a frame at its
// last byte, not when the next one begins (a frame over 64 KiB still
// goes without).
func Args(preset string, segment time.Duration, rungs []Rung, t0 time.Duration) []string {
	seg := segment.Seconds()
	first := t0.Seconds()
	// The boundaries are k*seg; the next one is forced as n_forced grows.
	// ffmpeg measures t from its own idea of the first frame's time, which
	// may sit a fraction of a frame off ours; keySlack absorbs that (a
	// keyframe a few milliseconds early still cuts the segment).
	force := fmt.Sprintf("expr:gte(t+%s+%s,(ceil(%s/%s-%s)+n_forced)*%s)",
		fmtSec(first), fmtSec(keySlack.Seconds()), fmtSec(first), fmtSec(seg), fmtSec(keySlack.Seconds()/seg), fmtSec(seg))

	var filter strings.Builder
	fmt.Fprintf(&filter, "[0:v]split=%d", len(rungs))
	for i := range rungs {
		fmt.Fprintf(&filter, "[s%d]", i)
	}
	for i, r := range rungs {
		fmt.Fprintf(&filter, ";[s%d]scale=-2:%d,format=yuv420p[o%d]", i, r.Height, i)
	}

	a := []string{
		"-hide_banner", "-loglevel", "warning", "-nostats",
		"-copyts", "-analyzeduration", "1000000", "-thread_type", "slice", "-f", "mpegts", "-i", "pipe:0",
		"-filter_complex", filter.String(),
	}
	for i := range rungs {
		a = append(a, "-map", fmt.Sprintf("[o%d]", i))
	}
	a = append(a,
		"-c:v", "libx264", "-preset", preset, "-tune", "zerolatency", "-profile:v", "high",
		"-bf", "0", "-sc_threshold", "0", "-force_key_frames", force,
		// Passthrough timestamps in a 90 kHz encoder time base: the default,
		// 1/frame rate, would round them onto a frame grid.
		"-fps_mode", "passthrough", "-enc_time_base", "1:90000",
	)
	for i, r := range rungs {
		b := strconv.Itoa(r.Bitrate)
		a = append(a, "-b:v:"+strconv.Itoa(i), b, "-maxrate:v:"+strconv.Itoa(i), b, "-bufsize:v:"+strconv.Itoa(i), b)
	}
	return append(a, "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "-omit_video_pes_length", "0", "-f", "mpegts", "pipe:1")
}

func fmtSec(s float64) string { return strconv.FormatFloat(s, 'f', 6, 64) }

// runOnce runs ffmpeg once: from the next source keyframe until the input
// ends (errInputEnded), ffmpeg fails, or ctx is canceled.
func (j *job) runOnce(ctx context.Context) error {
	first, err := j.nextKey(ctx)
	if err != nil {
		return err
	}
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	cmd := exec.CommandContext(runCtx, j.t.ffmpeg, j.args(first.pts)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdout: %w", err)
	}
	stderr := &tail{max: 2048}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	j.setPID(cmd.Process.Pid)
	defer j.setPID(0)
	j.log.Info("ffmpeg started", "pid", cmd.Process.Pid, "from", first.pts, "rungs", ladderString(j.rungs))

	fed := &feedClock{}
	fed.mark()
	feedErr := make(chan error, 1)
	go func() { feedErr <- j.feed(runCtx, stdin, first, fed, kill) }()

	readErr := j.collect(stallReader{r: stdout, fed: fed})
	if readErr != nil {
		kill() // ffmpeg's output is unusable: stop it and the feeder
	}
	errFeed := <-feedErr
	errWait := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(errFeed, errInputEnded) && errWait == nil && readErr == nil:
		j.log.Info("ffmpeg finished")
		return errInputEnded
	}
	return fmt.Errorf("ffmpeg: %w (stderr: %q)", errors.Join(errWait, readErr, ignoreEnded(errFeed)), stderr.String())
}

func ignoreEnded(err error) error {
	if errors.Is(err, errInputEnded) {
		return nil
	}
	return err
}

// nextKey drops queued input up to the next keyframe: a new ffmpeg must
// start with one.
func (j *job) nextKey(ctx context.Context) (frame, error) {
	for {
		select {
		case <-ctx.Done():
			return frame{}, ctx.Err()
		case f, ok := <-j.in:
			if !ok {
				return frame{}, errInputEnded
			}
			if f.key {
				return f, nil
			}
			j.dropped.Inc()
		}
	}
}

// feed writes the source to ffmpeg as MPEG-TS on the stream timeline (90
// kHz) until the input ends or ctx is canceled. When the input ends it
// closes stdin, so that ffmpeg finishes, and kills it if it takes too long.
func (j *job) feed(ctx context.Context, stdin io.WriteCloser, first frame, fed *feedClock, kill func()) error {
	defer stdin.Close()
	bw := bufio.NewWriterSize(stdin, 64<<10)
	track := &mpegts.Track{Codec: &mpegts.CodecH264{}}
	if j.src.h265 {
		track.Codec = &mpegts.CodecH265{}
	}
	w := &mpegts.Writer{W: bw, Tracks: []*mpegts.Track{track}}
	if err := w.Initialize(); err != nil {
		return fmt.Errorf("mpegts writer: %w", err)
	}
	write := func(f frame) error {
		pts, dts := ticks90k(f.pts), ticks90k(f.dts)
		var err error
		if j.src.h265 {
			err = w.WriteH265(track, pts, dts, f.au)
		} else {
			err = w.WriteH264(track, pts, dts, f.au)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("write to ffmpeg: %w", err)
		}
		fed.mark()
		return nil
	}
	if err := write(first); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case f, ok := <-j.in:
			if !ok {
				time.AfterFunc(drainTimeout, kill)
				return errInputEnded
			}
			if err := write(f); err != nil {
				return err
			}
		}
	}
}

// ticks90k converts a stream time to MPEG-TS 90 kHz ticks.
func ticks90k(d time.Duration) int64 { return int64(d) * 9 / 100_000 }

// feedClock records when ffmpeg was last given input.
type feedClock struct {
	mu   sync.Mutex
	last time.Time
}

func (c *feedClock) mark() {
	c.mu.Lock()
	c.last = time.Now()
	c.mu.Unlock()
}

func (c *feedClock) since() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.last)
}

// stallReader reads ffmpeg's output, failing when ffmpeg has been fed but
// has not written anything for stallTimeout. A quiet ffmpeg whose input
// is quiet too (the publisher's uplink stalled) is waited for.
type stallReader struct {
	r   io.Reader
	fed *feedClock
}

type deadliner interface{ SetReadDeadline(time.Time) error }

func (s stallReader) Read(p []byte) (int, error) {
	d, ok := s.r.(deadliner)
	for {
		if ok {
			_ = d.SetReadDeadline(time.Now().Add(stallTimeout))
		}
		n, err := s.r.Read(p)
		if n > 0 || err == nil || !ok || !isTimeout(err) {
			return n, err
		}
		if s.fed.since() < stallTimeout {
			return 0, fmt.Errorf("no output for %s while being fed: %w", stallTimeout, err)
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// tail keeps the last max bytes written to it: ffmpeg's stderr.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

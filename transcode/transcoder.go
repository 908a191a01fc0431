// Package transcode makes an adaptive-bitrate ladder from each live stream:
// it sits between ingest and the origin, passes the publisher's tracks
// through, and runs one ffmpeg per stream that decodes the source video
// and encodes the ladder's renditions with a keyframe on every segment
// boundary of the stream timeline, so that segment N of every rendition
// covers the same media time. Frames go to ffmpeg and come back as
// MPEG-TS through pipes. Audio is not transcoded: the source's AAC track is
// shared by every rendition.
package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/ingest"
	"github.com/golivestream/live/origin"
)

// Config configures a Transcoder.
type Config struct {
	// Origin receives the streams. Required.
	Origin *origin.Server
	// Ladder lists the renditions to make. Empty means DefaultLadder().
	// Rungs taller than a stream's source are skipped for that stream.
	Ladder []Rung
	// Preset is the x264 preset. Empty means "veryfast", which keeps the
	// default ladder from a 1080p30 source above real time on two cores
	// (bench/transcode).
	Preset string
	// FFmpeg is the ffmpeg command. Empty means "ffmpeg" from PATH. When it
	// cannot be found, or has no libx264, transcoding is off and New logs a
	// warning.
	FFmpeg string
	// MaxJobs bounds the streams transcoded at once; past it, streams get
	// their source rendition only. Zero means the number of CPUs.
	MaxJobs int
	// SegmentDuration is the keyframe interval of every rendition; it must
	// be the origin's. Zero means 1 s.
	SegmentDuration time.Duration
	// Logger receives job events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Nil means none.
	Registerer prometheus.Registerer
}

// Transcoder is an ingest.Handler that passes streams to the origin and
// adds a transcoded ladder to each. It is safe for concurrent use.
type Transcoder struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// ffmpeg is the resolved command, empty when transcoding is off.
	ffmpeg string

	ctx    context.Context // canceled by Close: kills every ffmpeg
	cancel context.CancelFunc
	wg     sync.WaitGroup // job goroutines

	mu   sync.Mutex
	jobs map[*job]struct{} // guarded by mu
}

// New checks cfg and looks for ffmpeg.
func New(cfg Config) (*Transcoder, error) {
	if cfg.Origin == nil {
		return nil, errors.New("transcode: Origin is required")
	}
	if len(cfg.Ladder) == 0 {
		cfg.Ladder = DefaultLadder()
	}
	if err := checkLadder(cfg.Ladder); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	if cfg.Preset == "" {
		cfg.Preset = "veryfast"
	}
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = runtime.NumCPU()
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	t := &Transcoder{cfg: cfg, log: cfg.Logger, jobs: map[*job]struct{}{}, metrics: m}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if err := t.findFFmpeg(); err != nil {
		t.log.Warn("transcoding is off: streams get their source rendition only", "error", err)
	} else {
		t.log.Info("transcoding on", "ffmpeg", t.ffmpeg, "ladder", ladderString(cfg.Ladder), "preset", cfg.Preset, "max_jobs", cfg.MaxJobs)
	}
	return t, nil
}

// findFFmpeg resolves cfg.FFmpeg and checks that it has libx264.
func (t *Transcoder) findFFmpeg() error {
	path, err := exec.LookPath(t.cfg.FFmpeg)
	if err != nil {
		return fmt.Errorf("ffmpeg not found: %w", err)
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-hide_banner", "-encoders").Output()
	if err != nil {
		return fmt.Errorf("%s -encoders: %w", path, err)
	}
	if !strings.Contains(string(out), "libx264") {
		return fmt.Errorf("%s has no libx264 encoder", path)
	}
	t.ffmpeg = path
	return nil
}

// Enabled reports whether streams are transcoded.
func (t *Transcoder) Enabled() bool { return t.ffmpeg != "" }

// Publish passes the stream to the origin and starts its ladder. It is the
// ingest.Handler method.
func (t *Transcoder) Publish(name string, tracks []codecs.Codec, began time.Time) (ingest.Session, error) {
	sess, err := t.cfg.Origin.PublishAt(name, tracks, began)
	if err != nil {
		return nil, err
	}
	if !t.Enabled() {
		return sess, nil
	}
	log := t.log.With("stream", name)
	video := -1
	for i, c := range tracks {
		if c.IsVideo() {
			video = i
			break
		}
	}
	if video < 0 {
		return sess, nil
	}
	src, err := probeSource(tracks[video])
	if err != nil {
		log.Warn("source video not transcoded", "error", err)
		return sess, nil
	}
	rungs := rungsFor(t.cfg.Ladder, src.height)
	if len(rungs) == 0 {
		log.Info("source is smaller than every rung: source rendition only", "height", src.height)
		return sess, nil
	}

	t.mu.Lock()
	if len(t.jobs) >= t.cfg.MaxJobs {
		t.mu.Unlock()
		t.metrics.passthroughOnly.Inc()
		log.Warn("transcode limit reached: stream gets its source rendition only", "max_jobs", t.cfg.MaxJobs)
		return sess, nil
	}
	j := newJob(t, name, sess, src, rungs, log)
	t.jobs[j] = struct{}{}
	t.mu.Unlock()

	t.metrics.jobs.Inc()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		j.run(t.ctx)
		t.mu.Lock()
		delete(t.jobs, j)
		t.mu.Unlock()
		t.metrics.jobs.Dec()
		// Before done: a publisher coming back makes a new job, whose
		// series must not be deleted by this one.
		t.metrics.forget(name, rungs)
		close(j.done)
	}()
	return &session{Session: sess, job: j, video: video}, nil
}

// Status is a job's state, for operators and tests.
type Status struct {
	Stream string
	// PID is the running ffmpeg's process id, 0 between runs.
	PID int
	// Restarts counts the ffmpeg runs after the first.
	Restarts int
	// Rungs names the renditions made, in ladder order.
	Rungs []string
}

// Status returns the running jobs.
func (t *Transcoder) Status() []Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Status, 0, len(t.jobs))
	for j := range t.jobs {
		out = append(out, j.status())
	}
	return out
}

// Close kills every ffmpeg and waits for the jobs to end.
func (t *Transcoder) Close() {
	t.cancel()
	t.wg.Wait()
}

// session is an origin session whose source video also feeds a job.
type session struct {
	*origin.Session
	job   *job
	video int // the track transcoded
}

// WriteVideo packages the access unit and hands it to the job on the
// stream timeline. The job never blocks the publisher: when ffmpeg falls
// behind, it drops input up to the next keyframe.
func (s *session) WriteVideo(track int, pts, dts time.Duration, au [][]byte) error {
	err := s.Session.WriteVideo(track, pts, dts, au)
	if track == s.video && err == nil {
		off := s.Session.TimelineOffset()
		s.job.push(pts+off, dts+off, au)
	}
	return err
}

// Close lets ffmpeg finish what it was given, flushes the ladder, then
// ends the stream.
func (s *session) Close() {
	s.job.stop()
	s.Session.Close()
}

// Drop is Close for a publisher that was lost: the stream waits for it.
func (s *session) Drop() {
	s.job.stop()
	s.Session.Drop()
}

func ladderString(rungs []Rung) string {
	parts := make([]string, len(rungs))
	for i, r := range rungs {
		parts[i] = fmt.Sprintf("%s:%dk", r.Name, r.Bitrate/1000)
	}
	return strings.Join(parts, ",")
}

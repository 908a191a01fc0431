package transcode

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/origin"
)

// Restart backoff: the first restart waits minBackoff, each next one twice
// as long up to maxBackoff; a run that lasted stableRun resets it.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
	stableRun  = 30 * time.Second
	// queueFrames is how many source frames may wait for ffmpeg: a few
	// seconds of video.
	queueFrames = 300
	// drainTimeout bounds the wait for ffmpeg to finish its input when the
	// publisher leaves.
	drainTimeout = 5 * time.Second
)

// frame is a source access unit on the stream timeline, copied out of the
// publisher's buffers.
type frame struct {
	pts, dts time.Duration
	key      bool
	au       [][]byte
}

// job transcodes one stream: it runs ffmpeg, restarting it when it fails,
// until the stream ends.
type job struct {
	t     *Transcoder
	name  string
	sess  *origin.Session
	src   source
	rungs []Rung
	log   *slog.Logger
	in    chan frame
	done  chan struct{} // closed when the job has ended and is accounted

	// The job's own series of the per-frame counters, looked up once.
	framesIn, dropped prometheus.Counter

	mu       sync.Mutex
	stopped  bool // no more input; guarded by mu
	skipping bool // dropping input until a keyframe; guarded by mu
	pid      int  // guarded by mu
	restarts int  // guarded by mu
}

func newJob(t *Transcoder, name string, sess *origin.Session, src source, rungs []Rung, log *slog.Logger) *job {
	return &job{
		t: t, name: name, sess: sess, src: src, rungs: rungs,
		log:  log,
		in:   make(chan frame, queueFrames),
		done: make(chan struct{}),

		framesIn: t.metrics.framesIn.WithLabelValues(name),
		dropped:  t.metrics.dropped.WithLabelValues(name),
	}
}

// push queues a source access unit without blocking. When the queue is
// full, input is dropped up to the next keyframe, so that ffmpeg never
// sees a frame whose references are missing.
func (j *job) push(pts, dts time.Duration, au [][]byte) {
	key := j.src.isKey(au)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopped {
		return
	}
	if j.skipping && !key {
		j.dropped.Inc()
		return
	}
	f := frame{pts: pts, dts: dts, key: key, au: j.src.withParams(au, key)}
	select {
	case j.in <- f:
		j.skipping = false
		j.framesIn.Inc()
	default:
		if !j.skipping {
			j.log.Warn("ffmpeg is behind: dropping source frames up to the next keyframe")
		}
		j.skipping = true
		j.dropped.Inc()
	}
}

// stop ends the input and waits, for a while, for ffmpeg to encode what it
// was given.
func (j *job) stop() {
	j.mu.Lock()
	if !j.stopped {
		j.stopped = true
		close(j.in)
	}
	j.mu.Unlock()
	select {
	case <-j.done:
	case <-time.After(drainTimeout + time.Second):
		j.log.Warn("transcode did not finish in time; the stream ends without its last ladder segments")
	}
}

// run runs ffmpeg until the input ends or ctx is canceled, restarting it
// with backoff when it fails.
func (j *job) run(ctx context.Context) {
	backoff := minBackoff
	for {
		start := time.Now()
		err := j.runOnce(ctx)
		if errors.Is(err, errInputEnded) || ctx.Err() != nil {
			return
		}
		if time.Since(start) >= stableRun {
			backoff = minBackoff
		}
		j.mu.Lock()
		j.restarts++
		j.mu.Unlock()
		j.t.metrics.restarts.WithLabelValues(j.name).Inc()
		j.log.Warn("ffmpeg failed; the source rendition goes on, the ladder restarts", "error", err, "after", backoff)
		if !j.wait(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// wait lets d pass, dropping the input that arrives meanwhile. It returns
// false when the input ended or ctx was canceled.
func (j *job) wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case _, ok := <-j.in:
			if !ok {
				return false
			}
			j.dropped.Inc()
		}
	}
}

func (j *job) setPID(pid int) {
	j.mu.Lock()
	j.pid = pid
	j.mu.Unlock()
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := Status{Stream: j.name, PID: j.pid, Restarts: j.restarts}
	for _, r := range j.rungs {
		st.Rungs = append(st.Rungs, r.Name)
	}
	return st
}

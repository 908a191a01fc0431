package origin

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// streamEnv is what every stream of a Server is given at creation: the
// server's settings, its metrics and logger, and the way back into its
// registry. It is shared by the streams and never modified.
type streamEnv struct {
	cfg     Config // as New validated it; only read
	metrics *metrics
	log     *slog.Logger
	// prot encrypts the streams it chooses (protect.go); nil when none is.
	prot *protector
	// ladderTag names this process in the ETags of the ladder's segments
	// (segmentETag): another origin's encoder makes other bytes under the
	// same numbers, and a cache must not continue one's body with the
	// other's. Random, made at New.
	ladderTag string
	// forget drops a stream from the registry, once it has lingered
	// (Server.forget). It takes the registry lock, so no stream's mu may
	// be held when it is called.
	forget func(*stream)
}

// stream is one instance of a live stream: its renditions' windows, its
// manifests, and its lifecycle (its publisher coming and going, the
// reconnect window, its end and linger: stream_publisher.go). Readers
// load the current snapshot without locking; writers (the publisher
// session, ladder renditions, timers) serialise on mu, which only the
// stream's own methods take.
type stream struct {
	instance // set at creation, then never modified
	env      *streamEnv

	// prior are the instances this one continues, oldest first: it took
	// over from a publisher lost mid-stream, or whose video setup
	// changed, before that stream ended. The MPD describes each as an
	// earlier Period, so DASH players go on into this one. Set at
	// creation; guarded by mu (the gone ones are dropped).
	prior []*stream
	// gone is set once the instance is dropped: its files are no longer
	// served, and a later instance's MPD leaves its Period out.
	gone atomic.Bool
	// succ is set when a later instance continues this one: HLS players
	// on this instance's media playlists go on into it (stream_bridge.go).
	succ atomic.Pointer[succession]
	// bridges caches, per rendition id, this instance's bridged media
	// playlist (a *bridgeCache).
	bridges sync.Map
	// arch archives the instance and keeps its DVR window (archive.go);
	// set at creation, nil when the origin keeps neither.
	arch *streamArchive

	// snap is the current snapshot; it is replaced, by publishLocked
	// only, with mu held.
	snap atomic.Pointer[snapshot]

	// mu serialises the writers of snap, and guards prior and the fields
	// below. Every function whose name ends in Locked expects it held,
	// and no other lock is meant by that suffix in this package. Lock
	// order: Server.mu before a stream's mu; no stream's mu is taken while
	// another stream's is held.
	mu sync.Mutex
	// session is the publisher feeding the stream, nil once it left; guarded by mu.
	session *Session
	// endTimer ends the stream once its lost publisher's reconnect window
	// is over, or drops it once it has lingered; guarded by mu.
	endTimer *time.Timer
	// sessionStart is when the current or last publisher started, and
	// sessionBase where on the timeline; guarded by mu.
	sessionStart time.Time
	sessionBase  time.Duration
}

// newStream returns a new instance of the stream name, beginning now.
// Its epoch is the millisecond it began, or, when it replaces old, one
// after old's, so that no two instances of a name share their files' URLs
// however fast one replaces the other. It is encrypted with keys (nil:
// clear).
func newStream(env *streamEnv, name string, now time.Time, old *stream, agreed int64, keys *streamKeys) *stream {
	// The MPD gives times to the millisecond: so is timeline zero.
	now = now.Truncate(time.Millisecond)
	epoch := now.UnixMilli()
	if old != nil {
		epoch = max(epoch, old.epochMillis+1)
	}
	if agreed != 0 {
		// The fleet's (Directory): the millisecond its first origin
		// began, which every origin of the stream takes as its timeline
		// zero too, so that they date its media alike (MPD
		// availabilityStartTime, PROGRAM-DATE-TIME): their manifests are
		// the same, as their files are.
		epoch = agreed
		now = time.UnixMilli(agreed)
	}
	st := &stream{
		instance: instance{
			name:        name,
			epochMillis: epoch,
			epoch:       strconv.FormatInt(epoch, 36),
			ast:         now,
			pres:        now,
			keys:        keys,
		},
		env: env,
	}
	st.snap.Store(&snapshot{changed: make(chan struct{})})
	st.arch = beginArchive(env, &st.instance)
	return st
}

// continues makes st the next Period of old's presentation, and the
// continuation of old's HLS media playlists, when old was still live: its
// publisher was lost, or is publishing anew. It is part of st's creation:
// no one else sees st yet.
func (st *stream) continues(old *stream) {
	if old.snap.Load().ended {
		return // the presentation ended, and its players with it
	}
	st.pres = old.pres
	// The new Period begins where the old one's media ends, unless the
	// new media began later by more than the jitter of an encoder's
	// output: an encoder that changed its setup mid-stream goes on with
	// media that follows on, arriving some tens of milliseconds late or
	// early, and a gap that small on the MPD timeline is one that players
	// must jump, which dash.js in Chromium sometimes never does (#22).
	end := old.start + old.snap.Load().end()
	st.start = st.ast.Sub(st.pres)
	if st.start < end+periodJitter {
		st.start = end
	}
	old.mu.Lock()
	st.prior = append(old.priorLocked(), old)
	old.mu.Unlock()
	old.succ.Store(newSuccession(st, old.snap.Load()))
}

// periodJitter is how much later than where the previous instance's
// media ends a continuing instance's media may begin, on the wall clock,
// and still be taken as following on from it (continues): a few frames
// of jitter in the encoder's output, not a gap in the media.
const periodJitter = 250 * time.Millisecond

// priorLocked drops the prior instances that are gone and returns the
// others. The returned slice is never modified.
func (st *stream) priorLocked() []*stream {
	for _, p := range st.prior {
		if p.gone.Load() {
			st.prior = slices.DeleteFunc(slices.Clone(st.prior), func(p *stream) bool { return p.gone.Load() })
			break
		}
	}
	return st.prior[:len(st.prior):len(st.prior)]
}

// publishLocked replaces the snapshot and wakes everyone waiting on the old
// one.
func (st *stream) publishLocked(next *snapshot) {
	next.changed = make(chan struct{})
	old := st.snap.Swap(next)
	close(old.changed)
}

// view returns st with its current snapshot.
func (st *stream) view() view { return view{&st.instance, st.snap.Load()} }

// views returns the streams with their current snapshots.
func views(streams []*stream) []view {
	out := make([]view, len(streams))
	for i, st := range streams {
		out[i] = st.view()
	}
	return out
}

// await returns what pick finds in st's snapshot, waiting for newer
// snapshots while pick says it is not final, for at most three segment
// durations or until ctx is done (the client left).
func (st *stream) await(ctx context.Context, pick func(*snapshot) (*object, bool)) *object {
	sn := st.snap.Load()
	if obj, final := pick(sn); final {
		return obj
	}
	held := st.env.metrics.held
	held.Inc()
	defer held.Dec()
	timer := time.NewTimer(3 * st.env.cfg.SegmentDuration)
	defer timer.Stop()
	for {
		select {
		case <-sn.changed:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
		sn = st.snap.Load()
		if obj, final := pick(sn); final {
			return obj
		}
	}
}

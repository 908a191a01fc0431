package web

import (
	"slices"
	"sync"
	"time"
)

// StallThreshold is how long the buffer must stay empty for a stall: the
// definition the pages apply before they send a stall beacon, and the load
// generator's.
const StallThreshold = 2 * time.Second

// qoeWindow is the span of the one-minute figures; viewerWindow the one
// within which a heartbeat makes a session a current viewer.
const (
	qoeWindow    = time.Minute
	viewerWindow = 30 * time.Second
	// firstFrames bounds the first-frame times kept per stream.
	firstFrames = 256
	// sweepEvery spaces the sweeps of every stream that a full store makes
	// before it refuses a new session: a full store is not swept per beacon.
	sweepEvery = time.Second
)

// QoE is a stream's quality of experience as the players report it.
type QoE struct {
	// Users counts the sessions heard from in the last minute, Stalled
	// those among them that stalled in it.
	Users   int `json:"users_1m"`
	Stalled int `json:"stalled_users_1m"`
	// StallRate is Stalled/Users: the one-minute user stall rate;
	// ZeroStallRate its complement. Both 0 without users.
	StallRate     float64 `json:"stall_rate_1m"`
	ZeroStallRate float64 `json:"zero_stall_rate_1m"`
	// Viewers counts the sessions heard from in the last 30 s.
	Viewers int `json:"viewers"`
	// FirstFrameP50 and FirstFrameP90 are percentiles of the recent
	// first-frame times, in milliseconds; 0 when none were reported.
	FirstFrameP50 float64 `json:"first_frame_ms_p50"`
	FirstFrameP90 float64 `json:"first_frame_ms_p90"`
}

// session is one playback session the server started: one user, however
// many beacons it sends.
type session struct {
	lastSeen  time.Time
	lastStall time.Time // zero: never stalled
	beacons   bucket    // the beacons it may still send
}

// streamQoE holds one stream's sessions and recent first-frame times.
type streamQoE struct {
	sessions    map[sessionID]*session
	firstFrames []float64 // ring of the last firstFrames values, ms
	next        int
}

// qoeLimits bound a qoeStore.
type qoeLimits struct {
	// maxSessions bounds the sessions kept, all streams together.
	maxSessions int
	// perMinute and burst bound the beacons one session may send: a token
	// bucket refilled at perMinute, holding at most burst.
	perMinute, burst float64
}

// recordResult is what became of a beacon.
type recordResult int

const (
	recorded    recordResult = iota
	refusedFull              // a new session, and the store holds maxSessions
	refusedRate              // the session is over its beacon rate
)

// qoeStore keeps the QoE figures of every stream. It is safe for
// concurrent use.
type qoeStore struct {
	limits qoeLimits

	mu       sync.Mutex
	streams  map[string]*streamQoE // guarded by mu
	sessions int                   // sessions in streams; guarded by mu
	sweptAt  time.Time             // the last sweep of a full store; guarded by mu
}

func newQoEStore(l qoeLimits) *qoeStore {
	return &qoeStore{limits: l, streams: map[string]*streamQoE{}}
}

// record applies one validated beacon of session id, which the caller
// checked was issued for stream, at now.
func (q *qoeStore) record(stream string, id sessionID, b *beacon, now time.Time) recordResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.streams[stream]
	if st == nil {
		st = &streamQoE{sessions: map[sessionID]*session{}}
		q.streams[stream] = st
	}
	s := st.sessions[id]
	if s == nil {
		if q.sessions >= q.limits.maxSessions && now.Sub(q.sweptAt) >= sweepEvery {
			q.sweptAt = now
			for _, other := range q.streams {
				q.expireLocked(other, now)
			}
		}
		if q.sessions >= q.limits.maxSessions {
			return refusedFull
		}
		s = &session{beacons: bucket{tokens: q.limits.burst, at: now}}
		st.sessions[id] = s
		q.sessions++
	}
	if !s.beacons.take(now, q.limits.perMinute/60, q.limits.burst) {
		return refusedRate
	}
	s.lastSeen = now
	switch b.Event {
	case "stall":
		s.lastStall = now
	case "start":
		if b.FirstFrameMS != nil {
			if len(st.firstFrames) < firstFrames {
				st.firstFrames = append(st.firstFrames, *b.FirstFrameMS)
			} else {
				st.firstFrames[st.next] = *b.FirstFrameMS
				st.next = (st.next + 1) % firstFrames
			}
		}
	}
	return recorded
}

// expireLocked drops the sessions of st not heard from within the
// one-minute window. q.mu must be held.
func (q *qoeStore) expireLocked(st *streamQoE, now time.Time) {
	for id, s := range st.sessions {
		if now.Sub(s.lastSeen) > qoeWindow {
			delete(st.sessions, id)
			q.sessions--
		}
	}
}

// figures returns the QoE of stream at now, expiring old sessions.
func (q *qoeStore) figures(stream string, now time.Time) QoE {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.streams[stream]
	if st == nil {
		return QoE{}
	}
	q.expireLocked(st, now)
	var f QoE
	for _, s := range st.sessions {
		f.Users++
		if !s.lastStall.IsZero() && now.Sub(s.lastStall) <= qoeWindow {
			f.Stalled++
		}
		if now.Sub(s.lastSeen) <= viewerWindow {
			f.Viewers++
		}
	}
	if f.Users > 0 {
		f.StallRate = float64(f.Stalled) / float64(f.Users)
		f.ZeroStallRate = 1 - f.StallRate
	}
	if n := len(st.firstFrames); n > 0 {
		sorted := slices.Clone(st.firstFrames)
		slices.Sort(sorted)
		f.FirstFrameP50 = sorted[n/2]
		f.FirstFrameP90 = sorted[min(n*9/10, n-1)]
	}
	return f
}

// forget drops streams that no longer exist.
func (q *qoeStore) forget(keep func(string) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, st := range q.streams {
		if !keep(name) {
			q.sessions -= len(st.sessions)
			delete(q.streams, name)
		}
	}
}

// names returns the streams with figures.
func (q *qoeStore) names() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.streams))
	for name := range q.streams {
		out = append(out, name)
	}
	return out
}

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
	// maxSessions bounds the sessions kept per stream.
	maxSessions = 100000
	// firstFrames bounds the first-frame times kept per stream.
	firstFrames = 256
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

// session is one page load.
type session struct {
	lastSeen  time.Time
	lastStall time.Time // zero: never stalled
}

// streamQoE holds one stream's sessions and recent first-frame times.
type streamQoE struct {
	sessions    map[string]*session
	firstFrames []float64 // ring of the last firstFrames values, ms
	next        int
}

// qoeStore keeps the QoE figures of every stream. It is safe for
// concurrent use.
type qoeStore struct {
	mu      sync.Mutex
	streams map[string]*streamQoE // guarded by mu
}

func newQoEStore() *qoeStore { return &qoeStore{streams: map[string]*streamQoE{}} }

// record applies one validated beacon at now. It reports false when the
// stream has as many sessions as it may keep and this one is new.
func (q *qoeStore) record(b *beacon, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.streams[b.Stream]
	if st == nil {
		st = &streamQoE{sessions: map[string]*session{}}
		q.streams[b.Stream] = st
	}
	s := st.sessions[b.Session]
	if s == nil {
		if len(st.sessions) >= maxSessions {
			st.expire(now)
			if len(st.sessions) >= maxSessions {
				return false
			}
		}
		s = &session{}
		st.sessions[b.Session] = s
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
	return true
}

// expire drops the sessions not heard from within the one-minute window.
func (st *streamQoE) expire(now time.Time) {
	for id, s := range st.sessions {
		if now.Sub(s.lastSeen) > qoeWindow {
			delete(st.sessions, id)
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
	st.expire(now)
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
	for name := range q.streams {
		if !keep(name) {
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

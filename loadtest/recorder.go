package loadtest

import (
	"sync"
	"sync/atomic"
	"time"
)

// class is the kind of object a request fetches.
type class int

const (
	classPlaylist class = iota // multivariant and media playlists, MPDs
	classInit                  // init segments
	classSegment               // media segments
	// classPart is what low-latency players ask for before it is
	// complete, which servers hold and send as it is produced: LL-HLS
	// parts (listed or hinted), and the segments low-latency DASH
	// players read chunk by chunk. Its latency includes that wait.
	classPart
	numClasses
)

func (c class) String() string { return [...]string{"playlist", "init", "segment", "part"}[c] }

// kind is what a player plays.
type kind int

const (
	kindHLS    kind = iota // HLS, as hls.js does by default
	kindLLHLS              // LL-HLS, as hls.js does in lowLatencyMode
	kindDASH               // DASH, as dash.js does by default
	kindLLDASH             // low-latency DASH, as dash.js does in low-latency mode
	numKinds
)

func (k kind) String() string { return [...]string{"hls", "ll-hls", "dash", "ll-dash"}[k] }

// errKind classifies failed requests.
type errKind int

const (
	errTimeout errKind = iota // the request's deadline passed
	errConnect                // dialing failed (refused, unreachable)
	errStatus                 // an HTTP status other than 200; counted by status too
	errParse                  // a playlist or MPD we cannot use
	errAborted                // the body was cut short
	errPublish                // a broadcaster's RTMP session failed
	errOther
	numErrKinds
)

func (k errKind) String() string {
	return [...]string{"timeout", "connect", "status", "parse", "aborted", "publish", "other"}[k]
}

// bucket is what happened in one second of the run.
type bucket struct {
	requests [numClasses]atomic.Int64
	bytes    [numClasses]atomic.Int64
	latency  [numClasses]histogram
	errors   atomic.Int64
	stalls   atomic.Int64
	starts   atomic.Int64 // players whose first segment arrived
	viewers  atomic.Int64 // players running, set once a second
}

// viewerSpan is one player's life, for the one-minute figures: offsets
// from the run's start.
type viewerSpan struct {
	start, end time.Duration
	stalls     []time.Duration // when each stall was counted
	kind       kind
	played     bool // its first segment came
}

// recorder keeps the figures of a run in per-second buckets of atomic
// counters and fixed-size histograms, so that recording never allocates.
// It is safe for concurrent use.
type recorder struct {
	start   time.Time
	buckets []bucket // one per second of the run, the last one catching the rest

	firstSegment histogram // player start to first segment
	// glass is the glass-to-player latency by kind of player: sampled
	// whenever media arrives, the time from a frame reaching ingest to
	// its being on screen.
	glass       [numKinds]histogram
	errKinds    [numErrKinds]atomic.Int64
	statuses    [600]atomic.Int64 // by HTTP status, for errStatus
	totalReqs   atomic.Int64
	totalBytes  atomic.Int64
	totalErrors atomic.Int64
	totalStalls atomic.Int64
	hintsGone   atomic.Int64 // hinted parts never produced (404)

	mu        sync.Mutex
	spans     []viewerSpan   // guarded by mu: finished players
	hosts     map[string]int // guarded by mu: final entry host -> player sessions
	rebuffer  time.Duration  // guarded by mu: summed over finished players
	spells    int            // guarded by mu: empty spells, summed
	watched   time.Duration  // guarded by mu: time since the first segment, summed
	neverPlay int            // guarded by mu: players whose first segment never came
	// partsSeen is, by media playlist path, the last part an LL-HLS
	// playlist listed; parts counts the parts listed after the first
	// seen (the parts produced while players ran). Guarded by mu.
	partsSeen map[string]partPos
	parts     int64
}

func newRecorder(start time.Time, span time.Duration) *recorder {
	n := int(span/time.Second) + 2
	return &recorder{start: start, buckets: make([]bucket, n), hosts: map[string]int{}, partsSeen: map[string]partPos{}}
}

// since returns the offset of t from the start.
func (r *recorder) since(t time.Time) time.Duration { return t.Sub(r.start) }

// at returns the bucket of offset d.
func (r *recorder) at(d time.Duration) *bucket {
	i := int(d / time.Second)
	return &r.buckets[min(max(i, 0), len(r.buckets)-1)]
}

// request records a completed request of class c ending at end.
func (r *recorder) request(c class, end time.Time, latency time.Duration, n int64) {
	b := r.at(r.since(end))
	b.requests[c].Add(1)
	b.bytes[c].Add(n)
	b.latency[c].add(latency)
	r.totalReqs.Add(1)
	r.totalBytes.Add(n)
}

// failure records a failed request (or publish) at t.
func (r *recorder) failure(k errKind, status int, t time.Time) {
	r.at(r.since(t)).errors.Add(1)
	r.errKinds[k].Add(1)
	if k == errStatus && status > 0 && status < len(r.statuses) {
		r.statuses[status].Add(1)
	}
	r.totalErrors.Add(1)
}

// stall records a stall counted at offset d.
func (r *recorder) stall(d time.Duration) {
	r.at(d).stalls.Add(1)
	r.totalStalls.Add(1)
}

// started records a player's first segment at offset d, wait after its start.
func (r *recorder) started(d, wait time.Duration) {
	r.at(d).starts.Add(1)
	r.firstSegment.add(wait)
}

// latency records a glass-to-player latency of a player of kind k.
func (r *recorder) latency(k kind, d time.Duration) { r.glass[k].add(d) }

// listedParts counts the parts l, a media playlist at path parsed for
// the first time, lists beyond those counted before at path.
func (r *recorder) listedParts(path string, l *segmentList) {
	if l.ll == nil || len(l.ll.parts) == 0 {
		return
	}
	parts := l.ll.parts
	last := parts[len(parts)-1].partPos
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.partsSeen[path]
	if ok && !prev.before(last) {
		return
	}
	r.partsSeen[path] = last
	if !ok {
		return // the parts before the run's
	}
	for i := len(parts) - 1; i >= 0 && prev.before(parts[i].partPos); i-- {
		r.parts++
	}
}

// host records that a player session's entry resolved to host.
func (r *recorder) host(h string) {
	r.mu.Lock()
	r.hosts[h]++
	r.mu.Unlock()
}

// finished records a player that stopped.
func (r *recorder) finished(span viewerSpan, pb *playback) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, span)
	if !pb.started {
		r.neverPlay++
		return
	}
	r.rebuffer += pb.rebuffered()
	r.spells += pb.spells
	r.watched += pb.at - pb.startedAt
}

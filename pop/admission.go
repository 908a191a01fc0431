package pop

import (
	"math"
	"net/http"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// A node short of CPU keeps its viewers playing by taking no new ones:
// while it is overloaded, a request that would start a playback session
// (a multivariant playlist or an MPD, from a client the node has not
// served within the viewer window) gets a fast 503 with Retry-After,
// which players retry and a global load balancer reads as "send them
// elsewhere" (Server.Overloaded); everything the node's viewers ask for
// goes on. Without this, a flash crowd beyond what the cores can serve
// makes every viewer stall alike.
//
// Overloaded means, over the last admissionSustain sample intervals in a
// row, Go's scheduling latency (the time a runnable goroutine waited for
// a CPU, runtime/metrics /sched/latencies:seconds) had a 99th percentile
// above Config.OverloadLatency, or the node has Config.MaxViewers
// viewers. One busy interval is not enough: players request in step at
// each segment boundary, and a crowd's arrival is a burst of new
// connections, both of which lift the latency for a moment on a node
// that serves them all well. It ends once the latency stays below half
// the limit for a whole interval, so that the door does not flap.

// admission is the node's overload state and its sampler.
type admission struct {
	limit      time.Duration // scheduling latency p99 that closes the door; 0: none
	maxViewers int           // 0: no bound
	window     time.Duration // the viewer window
	// closed is whether new sessions are refused; p99 is the last
	// sample's scheduling latency p99, in nanoseconds.
	closed atomic.Bool
	p99    atomic.Int64

	sample []rtmetrics.Sample
	prev   []uint64 // the histogram's counts at the last sample
	// busyRun counts the samples in a row with the latency above limit.
	busyRun int
}

// admissionSustain is how many samples in a row must be over the latency
// limit to close the door: one second.
const admissionSustain = 2

// admissionInterval is how often the overload state is sampled.
const admissionInterval = 500 * time.Millisecond

func newAdmission(limit time.Duration, maxViewers int, window time.Duration) *admission {
	return &admission{
		limit: limit, maxViewers: maxViewers, window: window,
		sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}},
	}
}

// update samples the scheduling latency and the viewers, and opens or
// closes the door.
func (a *admission) update(viewers int) {
	rtmetrics.Read(a.sample)
	p99 := time.Duration(0)
	if a.sample[0].Value.Kind() == rtmetrics.KindFloat64Histogram {
		h := a.sample[0].Value.Float64Histogram()
		p99 = deltaQuantile(h, a.prev, 0.99)
		a.prev = append(a.prev[:0], h.Counts...)
	}
	a.judge(p99, viewers)
}

// judge opens or closes the door after a sample: the scheduling latency
// p99 of the interval and the viewers now.
func (a *admission) judge(p99 time.Duration, viewers int) {
	a.p99.Store(int64(p99))
	full := a.maxViewers > 0 && viewers >= a.maxViewers
	if a.limit > 0 && p99 > a.limit {
		a.busyRun++
	} else {
		a.busyRun = 0
	}
	busy := a.busyRun >= admissionSustain
	calm := a.limit <= 0 || p99 <= a.limit/2
	switch {
	case full || busy:
		a.closed.Store(true)
	case calm:
		a.closed.Store(false)
	}
}

// deltaQuantile returns the q quantile of the observations h holds beyond
// the counts prev (an earlier reading of the same histogram), as the
// upper bound of the bucket it falls in; 0 without observations.
func deltaQuantile(h *rtmetrics.Float64Histogram, prev []uint64, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		if i < len(prev) {
			c -= prev[i]
		}
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		if i < len(prev) {
			c -= prev[i]
		}
		if seen += c; seen >= want {
			upper := h.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = h.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}

// startsSession reports whether r, for an object of kind k, would start
// a playback session: an entry manifest from a client the node has not
// served within the viewer window.
func (s *Server) startsSession(r *http.Request, k layout.Kind, now time.Time) bool {
	return k.IsEntry() && !s.load.recent(r, now, s.admission.window)
}

// Overloaded reports whether the node takes no new sessions now: a
// global load balancer should send new viewers elsewhere. Safe for
// concurrent use.
func (s *Server) Overloaded() bool { return s.admission.closed.Load() }

// admitEvery samples the node's load every admissionInterval until s
// stops.
func (s *Server) admitEvery() {
	t := time.NewTicker(admissionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			before := s.admission.closed.Load()
			s.admission.update(s.load.load(s.admission.window).Viewers)
			if after := s.admission.closed.Load(); after != before {
				s.log.Warn("admission of new sessions changed", "taking_new_sessions", !after,
					"sched_latency_p99", time.Duration(s.admission.p99.Load()), "limit", s.admission.limit)
			}
		}
	}
}

// retryAfterOverload is the Retry-After of a session refused for
// overload: players retry, a balancer meanwhile sends others elsewhere.
var retryAfterOverload = []string{"2"}

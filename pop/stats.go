package pop

import (
	"strings"
	"sync"
	"sync/atomic"
)

// StreamStats are a node's figures for one stream since it started.
type StreamStats struct {
	// Requests counts the stream's requests answered from the caches.
	Requests int64
	// Hits counts those answered without a fetch of their own: from the
	// cache, or by joining a fill in progress.
	Hits int64
	// OriginFetches counts the fetches this node sent to its origins.
	OriginFetches int64
}

// HitRatio returns Hits/Requests, or 0 without requests.
func (s StreamStats) HitRatio() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Requests)
}

// streamCounters are the live counters behind StreamStats.
type streamCounters struct {
	requests, hits, originFetches atomic.Int64
}

// streamStats keeps counters per stream name, found in keys /live/{name}/….
// The number of names is bounded; past it, new names are not counted.
type streamStats struct {
	m sync.Map // string -> *streamCounters
	n atomic.Int64
}

const maxStatsStreams = 10000

func (ss *streamStats) counters(key string) *streamCounters {
	rest, ok := strings.CutPrefix(key, "/live/")
	if !ok {
		return nil
	}
	name, _, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return nil
	}
	if c, ok := ss.m.Load(name); ok {
		return c.(*streamCounters)
	}
	if ss.n.Load() >= maxStatsStreams {
		return nil
	}
	c, loaded := ss.m.LoadOrStore(name, &streamCounters{})
	if !loaded {
		ss.n.Add(1)
	}
	return c.(*streamCounters)
}

// StreamStats returns this node's figures for stream name.
func (s *Server) StreamStats(name string) StreamStats {
	c, ok := s.stats.m.Load(name)
	if !ok {
		return StreamStats{}
	}
	sc := c.(*streamCounters)
	return StreamStats{Requests: sc.requests.Load(), Hits: sc.hits.Load(), OriginFetches: sc.originFetches.Load()}
}

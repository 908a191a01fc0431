package origin

import (
	"sync"
	"time"
)

// The lifecycle side of bridged playlists (playlist_bridge.go): which
// instance continues which, which rendition of the later one each
// rendition's players go on with (decided once), the chain of instances
// as it stands when a playlist is asked for, and the per-instance cache
// of bridged playlists.

// succession records that a later instance took over from a live one.
// It is immutable but for mapped.
type succession struct {
	to *stream
	// from is, per rendition of the earlier instance, what its successor
	// is chosen by, and the number after its last segment when to took
	// over: a segment a transcoder flushes later is not bridged, so that
	// the numbers after it never move.
	from map[string]handedOver
	// ladder is set when the earlier instance had a transcoding ladder:
	// the later one's rungs are waited for a while (bridgeGrace).
	ladder bool

	mu sync.Mutex
	// mapped is the rendition of to that each rendition's players go on
	// with, once decided ("" for none); guarded by mu.
	mapped map[string]string
}

// handedOver is a rendition of an instance as a later one took over.
type handedOver struct {
	next   uint64
	height int // 0 for audio
	ladder bool
}

func newSuccession(to *stream, from *snapshot) *succession {
	s := &succession{to: to, from: make(map[string]handedOver, len(from.renditions)), mapped: make(map[string]string)}
	for _, r := range from.renditions {
		s.from[r.id] = handedOver{next: r.next, height: r.info.Height, ladder: r.ladder}
		s.ladder = s.ladder || r.ladder
	}
	return s
}

// bridgeGrace is how many segment durations of media a later instance
// may have before a rung of the height a rendition needs is taken as one
// it will not get: its transcoder adds its rungs within about a second.
const bridgeGrace = 3

// successor returns the rendition of s.to that the players of rendition
// rid go on with, and false while that is not decided yet. "" means none:
// the later instance has nothing of rid's kind. A video rendition goes on
// with one of the same height as soon as there is one; otherwise, once
// the later instance's ladder had its time (or there is none to wait
// for), with the nearest height, the lower of two equally near.
func (s *succession) successor(rid string, segment time.Duration) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.mapped[rid]; ok {
		return id, true
	}
	snap := s.to.snap.Load()
	if len(snap.renditions) == 0 && !snap.ended && !s.to.gone.Load() {
		// to is not attached to its publisher yet (continues comes
		// first): it has renditions to come, none to decide on.
		return "", false
	}
	from := s.from[rid]
	settled := !s.ladder || snap.ended || s.to.gone.Load() || snap.end() >= bridgeGrace*segment
	var pick *rendition
	if kindOf(rid) == "audio" {
		if pick = snap.rendition(rid); pick == nil {
			for _, r := range snap.renditions {
				if kindOf(r.id) == "audio" {
					pick = r
					break
				}
			}
		}
	} else {
		dist := func(r *rendition) int { return abs(r.info.Height - from.height) }
		for _, r := range snap.renditions {
			if !r.info.Video {
				continue
			}
			switch {
			case pick == nil, dist(r) < dist(pick),
				dist(r) == dist(pick) && r.info.Height < pick.info.Height,
				r.info.Height == pick.info.Height && r.ladder == from.ladder && pick.ladder != from.ladder:
				pick = r
			}
		}
		if pick != nil && dist(pick) != 0 && !settled {
			return "", false
		}
	}
	if pick == nil && !settled {
		return "", false
	}
	id := ""
	if pick != nil {
		id = pick.id
	}
	s.mapped[rid] = id
	return id, true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// newestOf returns the last instance of the chain that continues st.
func newestOf(st *stream) *stream {
	for succ := st.succ.Load(); succ != nil; succ = st.succ.Load() {
		st = succ.to
	}
	return st
}

// bridgeChain returns the instances that rendition rid of st goes on
// into, st first, as they are now, and whether the last of them ended
// that rendition. It asks each succession for the rendition rid's
// players go on with, which decides it the first time it can.
func (st *stream) bridgeChain(rid string) ([]chainLink, bool) {
	var chain []chainLink
	for cur := st; ; {
		snap := cur.snap.Load()
		r := snap.rendition(rid)
		if r == nil {
			// A later instance that has not made the rendition yet goes
			// on while it is live; the first instance has no such
			// rendition.
			return chain, cur == st || snap.ended
		}
		succ := cur.succ.Load()
		limit := r.next
		if succ != nil {
			if h, ok := succ.from[rid]; ok {
				limit = min(limit, h.next)
			}
		}
		chain = append(chain, chainLink{in: &cur.instance, r: r, limit: limit, gone: cur.gone.Load()})
		if succ == nil {
			return chain, snap.ended
		}
		next, ok := succ.successor(rid, st.env.cfg.SegmentDuration)
		if !ok {
			return chain, false
		}
		cur, rid = succ.to, next
	}
}

// bridgeCache is an instance's bridged media playlist of one rendition,
// for the snapshot of the chain's newest instance it was built from.
type bridgeCache struct {
	newest *snapshot
	obj    *lazyObject
}

// bridged returns st's bridged media playlist of rendition rid, built
// once per snapshot of the newest instance of its chain; nil when it
// lists nothing.
func (st *stream) bridged(rid string) *object {
	snap := newestOf(st).snap.Load()
	for {
		v, _ := st.bridges.Load(rid)
		if c, ok := v.(*bridgeCache); ok && c.newest == snap {
			return c.obj.get()
		}
		c := &bridgeCache{newest: snap, obj: newLazy(func() *object {
			chain, ended := st.bridgeChain(rid)
			body := bridgedPlaylist(chain, ended, st.env.cfg.Window)
			if body == nil {
				return nil
			}
			return newObject(body, typeM3U8, time.Now(), false)
		})}
		if v == nil {
			if _, loaded := st.bridges.LoadOrStore(rid, c); !loaded {
				return c.obj.get()
			}
		} else if st.bridges.CompareAndSwap(rid, v, c) {
			return c.obj.get()
		}
	}
}

// strip drops st's segments, once its files are no longer served, and
// keeps what its bridged playlists need of its renditions.
func (st *stream) strip() {
	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.snap.Load()
	next := &snapshot{ended: prev.ended}
	for _, r := range prev.renditions {
		c := *r
		c.discSeq = droppedDiscs(r)
		for _, e := range r.entries {
			if e.disc {
				c.discSeq++
			}
		}
		c.entries, c.partial, c.playlist = nil, nil, nil
		next.renditions = append(next.renditions, &c)
	}
	st.publishLocked(next)
}

package pop

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// prefetcher fetches segments ahead of the players: when a playlist or MPD
// refresh lists a new last segment, that segment and the next one are
// fetched at once (the origin holds the request for the next one until it
// exists), so the first players to ask find them cached or in flight.
//
// An HLS media playlist names one rendition, which its player watches. An
// MPD lists every rendition of the stream, of which a PoP's players may
// watch a few: MPD refreshes prefetch only renditions whose segments
// clients asked for within watchWindow.
type prefetcher struct {
	s  *Server
	mu sync.Mutex
	// done remembers the keys already prefetched; guarded by mu.
	done *simplelru.LRU[string, struct{}]
	// pruned is when watched was last swept; guarded by mu.
	pruned time.Time

	// watched maps a rendition's directory (a segment key up to its last
	// '/') to when a client last asked for one of its files, in Unix
	// nanoseconds: string -> *atomic.Int64.
	watched  sync.Map
	nWatched atomic.Int64
}

// watchWindow is how long a rendition counts as watched after a client
// asked for one of its files.
const watchWindow = 10 * time.Second

// maxWatched bounds the renditions remembered as watched.
const maxWatched = 10000

// watch records that a client asked for key, a segment or init segment.
// It allocates only the first time a rendition is seen.
func (p *prefetcher) watch(key string, now time.Time) {
	dir := key[:strings.LastIndexByte(key, '/')+1]
	if v, ok := p.watched.Load(dir); ok {
		v.(*atomic.Int64).Store(now.UnixNano())
		return
	}
	if p.nWatched.Load() >= maxWatched {
		return
	}
	t := &atomic.Int64{}
	t.Store(now.UnixNano())
	if _, loaded := p.watched.LoadOrStore(dir, t); !loaded {
		p.nWatched.Add(1)
	}
}

// isWatched reports whether a client asked for a file in key's directory
// within watchWindow of now.
func (p *prefetcher) isWatched(key string, now time.Time) bool {
	v, ok := p.watched.Load(key[:strings.LastIndexByte(key, '/')+1])
	return ok && now.UnixNano()-v.(*atomic.Int64).Load() <= int64(watchWindow)
}

// sweep forgets renditions not watched for a minute, at most once every
// watchWindow. The caller holds p.mu.
func (p *prefetcher) sweepLocked(now time.Time) {
	if now.Sub(p.pruned) < watchWindow {
		return
	}
	p.pruned = now
	p.watched.Range(func(k, v any) bool {
		if now.UnixNano()-v.(*atomic.Int64).Load() > int64(time.Minute) {
			p.watched.Delete(k)
			p.nWatched.Add(-1)
		}
		return true
	})
}

func newPrefetcher(s *Server) *prefetcher {
	done, _ := simplelru.NewLRU[string, struct{}](4096, nil)
	return &prefetcher{s: s, done: done}
}

// onComplete looks at a completed object: a live manifest that lists a
// new last segment has it and the next one prefetched.
func (p *prefetcher) onComplete(o *object) {
	ws, live := p.s.noteManifest(o)
	if !live || len(ws) == 0 {
		return
	}
	var keys []string
	if o.class == classPlaylist {
		w := ws[len(ws)-1] // where the playlist goes on
		keys = []string{segmentKey(w.dir, w.last), segmentKey(w.dir, w.last+1)}
	} else {
		now := time.Now()
		p.mu.Lock()
		p.sweepLocked(now)
		p.mu.Unlock()
		for _, w := range ws {
			if p.isWatched(w.dir, now) {
				keys = append(keys, segmentKey(w.dir, w.last), segmentKey(w.dir, w.last+1))
			}
		}
	}
	for _, k := range keys {
		p.mu.Lock()
		_, seen := p.done.Get(k)
		if !seen {
			p.done.Add(k, struct{}{})
		}
		p.mu.Unlock()
		if !seen {
			p.fetch(k)
		}
	}
}

// fetch fills key in the background, detached from any client.
func (p *prefetcher) fetch(key string) {
	s := p.s
	s.crew.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FetchTimeout)
		defer cancel()
		o, how, err := s.get(ctx, key, classify(key), false, "")
		if err != nil {
			return
		}
		if how == lookupMiss {
			s.metrics.prefetches.Inc()
		}
		o.body.attach()
		defer o.body.detach()
		o.body.wait(ctx)
	})
}

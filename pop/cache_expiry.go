package pop

import (
	"container/heap"
	"time"
)

// A shard drops the short-lived objects it holds (playlists, MPDs, 404s)
// once they are of no use, rather than keep them until the byte bound
// evicts them: requests for random missing URLs would otherwise fill the
// cache with dead 404s and push out the segments viewers want.

// maxExpiringTTL is the longest lifetime of an object dropped when it
// expires; longer-lived ones (segments) leave by eviction.
const maxExpiringTTL = time.Minute

// expiry is an object of the LRU and when it becomes useless: at its
// expiry, or for a playlist one lifetime later (it may stand in for a
// failed refresh until then: object.usableStale).
type expiry struct {
	o    *object
	when time.Time
}

// expiries is a min-heap of expiry by when (container/heap).
type expiries []expiry

func (e expiries) Len() int           { return len(e) }
func (e expiries) Less(i, j int) bool { return e[i].when.Before(e[j].when) }
func (e expiries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiries) Push(x any)        { *e = append(*e, x.(expiry)) }
func (e *expiries) Pop() any {
	old := *e
	x := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*e = old[:len(old)-1]
	return x
}

// expireLocked schedules the drop of o, just added to the LRU, if it is
// short-lived. The caller holds sh.mu.
func (sh *shard) expireLocked(o *object) {
	if o.ttl > maxExpiringTTL {
		return
	}
	when := o.expires
	if o.class.isManifest() && o.status == 200 {
		when = when.Add(o.ttl)
	}
	heap.Push(&sh.expiring, expiry{o, when})
}

// dropExpired removes from every shard the objects that became useless
// before now, and returns how many it removed.
func (c *cache) dropExpired(now time.Time) int {
	n := 0
	for _, sh := range c.shards {
		sh.mu.Lock()
		for len(sh.expiring) > 0 && !sh.expiring[0].when.After(now) {
			e := heap.Pop(&sh.expiring).(expiry)
			if cur, ok := sh.lru.Peek(e.o.key); ok && cur == e.o {
				sh.expired = true
				sh.lru.Remove(e.o.key)
				sh.expired = false
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// expireEvery is how often Run drops expired objects.
const expireEvery = time.Second

// dropExpiredEvery drops expired objects from the caches every
// expireEvery until s stops.
func (s *Server) dropExpiredEvery() {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.local.dropExpired(now)
			if s.proxy != nil {
				s.proxy.dropExpired(now)
			}
		}
	}
}

// drop removes key from the cache, if it holds it complete.
func (c *cache) drop(key string) {
	sh := c.shard(key)
	sh.mu.Lock()
	if _, ok := sh.lru.Peek(key); ok {
		sh.expired = true
		sh.lru.Remove(key)
		sh.expired = false
	}
	sh.mu.Unlock()
}

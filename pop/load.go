package pop

import (
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a node's load as a global load balancer wants it (see package
// gslb): how many viewers it serves and how many bytes it sends.
type Load struct {
	// Viewers is the number of distinct clients, told apart by address
	// and User-Agent, served a playlist, manifest or segment (or its
	// cached 404) within the window given to Server.Load. Requests
	// forwarded by the PoP's other nodes are not viewers.
	Viewers int
	// BytesServed counts the body bytes sent to clients since the node
	// started; its rate over an interval is the node's egress.
	BytesServed int64
}

// Load returns the node's load. Clients not seen within window are
// forgotten, so callers pass the same window on every call; zero means
// 5 s. It walks the clients seen, one shard lock at a time, and is meant
// to be called every few seconds. Safe for concurrent use.
func (s *Server) Load(window time.Duration) Load {
	return s.load.load(window)
}

const (
	// viewerShards splits the client set so that requests from many
	// clients rarely wait for each other's lock.
	viewerShards = 32
	// maxShardViewers bounds each shard: a million clients in all.
	// Past it, new clients go uncounted until old ones expire.
	maxShardViewers = 1 << 15
	// defaultViewerWindow is the window until Load says otherwise.
	defaultViewerWindow = 5 * time.Second
)

// loadMeter counts a node's active clients and bytes served. The hot
// path (seen, the bytes counter) costs two hashes, one uncontended lock
// and a map write per request, on the clock reading the request has
// already made, and allocates only as the map grows.
type loadMeter struct {
	seed  maphash.Seed
	start time.Time // stamps are monotonic nanoseconds since start
	bytes atomic.Int64
	// window is the last window given to load, in nanoseconds: a full
	// shard forgets clients older than that.
	window atomic.Int64
	shards [viewerShards]viewerShard
}

// viewerShard is one part of the client set.
type viewerShard struct {
	mu sync.Mutex
	// seen maps a client's hash to the stamp of its last request;
	// nextSweep is the stamp before which a full shard is not swept
	// again. Both guarded by mu.
	seen      map[uint64]int64
	nextSweep int64
	_         [40]byte // a shard per 64-byte cache line
}

func newLoadMeter() *loadMeter {
	m := &loadMeter{seed: maphash.MakeSeed(), start: time.Now()}
	m.window.Store(int64(defaultViewerWindow))
	for i := range m.shards {
		m.shards[i].seen = make(map[uint64]int64)
	}
	return m
}

// seen records a request from r's client at t.
func (m *loadMeter) seen(r *http.Request, t time.Time) {
	h := m.client(r)
	now := int64(t.Sub(m.start))
	sh := &m.shards[h%viewerShards]
	sh.mu.Lock()
	if _, ok := sh.seen[h]; !ok && len(sh.seen) >= maxShardViewers {
		// Forget expired clients, at most once per window: a shard full
		// of active clients must not cost a sweep per request.
		if window := m.window.Load(); now >= sh.nextSweep {
			sh.sweepLocked(now-window, now+window)
		}
		if len(sh.seen) >= maxShardViewers {
			sh.mu.Unlock()
			return
		}
	}
	sh.seen[h] = now
	sh.mu.Unlock()
}

// client names r's client by its address without the port and by its
// User-Agent, so that viewers behind one NAT count apart when their
// players differ.
func (m *loadMeter) client(r *http.Request) uint64 {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = addr[:i]
	}
	h := maphash.String(m.seed, addr)
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		h ^= maphash.String(m.seed, ua[0]) * 0x9e3779b97f4a7c15
	}
	return h
}

// sweepLocked forgets the clients last seen before cutoff, allows the
// next sweep of a full shard at next, and returns how many clients remain.
// The caller holds sh.mu.
func (sh *viewerShard) sweepLocked(cutoff, next int64) int {
	for k, t := range sh.seen {
		if t < cutoff {
			delete(sh.seen, k)
		}
	}
	sh.nextSweep = next
	return len(sh.seen)
}

// load counts the clients seen within window, forgetting the others.
func (m *loadMeter) load(window time.Duration) Load {
	if window <= 0 {
		window = defaultViewerWindow
	}
	m.window.Store(int64(window))
	now := int64(time.Since(m.start))
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.sweepLocked(now-int64(window), now+int64(window))
		sh.mu.Unlock()
	}
	return Load{Viewers: n, BytesServed: m.bytes.Load()}
}

// recent reports whether r's client was seen within window of t.
func (m *loadMeter) recent(r *http.Request, t time.Time, window time.Duration) bool {
	h := m.client(r)
	sh := &m.shards[h%viewerShards]
	sh.mu.Lock()
	last, ok := sh.seen[h]
	sh.mu.Unlock()
	return ok && int64(t.Sub(m.start))-last <= int64(window)
}

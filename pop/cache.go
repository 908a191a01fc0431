package pop

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// object is one response held by a cache: status, the headers to replay,
// and a body that may still be arriving. It is immutable once published.
type object struct {
	key    string
	class  class
	status int
	header http.Header
	// block is header, but Content-Length, with the CORS pair, as head
	// lines for the fast path (objectBlock); shared by the copies of the
	// object; nil when there is none.
	block  []byte
	body   *fill
	stored time.Time
	// expires is when the object stops being fresh; ttl is its lifetime.
	expires time.Time
	ttl     time.Duration
	// cacheable is false for responses that are shared only by the
	// requests of one flight (5xx, no-store).
	cacheable bool
	// file, for a segment in the LRU, is its body in a memory file, sent
	// by the fast path with sendfile(2); nil if none.
	file *bodyFile
	// hint, for a media playlist, holds the part its preload hint names
	// (partOrder), set once the playlist is complete, 0 for none; shared
	// by the copies of the object. Nil for other classes.
	hint *atomic.Uint64
}

// sendfileMin is the smallest segment given a bodyFile: below it, the
// copy sendfile saves costs less than its second system call (the head
// goes first, with MSG_MORE). Over loopback on this project's 2-core VM,
// one connection's full GETs cost less written than sent with sendfile
// up to 192 KiB, the same at 256 KiB (BenchmarkSegmentHit), and writing
// the flash crowd's segments (bench/flash, ~70 KB of video) saved 2% of
// the PoP's CPU; with wrk's many connections on a 250 KB segment
// sendfile was the cheaper (bench/pop).
const sendfileMin = 192 << 10

// cost is what o counts against its shard's byte bound: its body, twice
// when it also has a bodyFile, its key and headers, and its bookkeeping.
// It is what o holds in the heap, so that many small objects (404s) are
// bounded as tightly as a few large ones.
func (o *object) cost() int64 {
	body, _ := o.body.Bytes()
	n := int64(len(body)) + int64(len(o.key)) + headerCost(o.header) + int64(len(o.block)) + objectOverhead
	if o.file != nil {
		n += o.file.size
	}
	return n
}

// headerCost estimates the heap a response's header map holds: its
// entries' slots, slices and strings.
func headerCost(h http.Header) int64 {
	n := int64(64 * len(h))
	for k, vs := range h {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	return n
}

func (o *object) fresh(now time.Time) bool { return now.Before(o.expires) }

// usableStale reports whether o may stand in for a failed refresh: a
// playlist is served stale for at most one more lifetime.
func (o *object) usableStale(now time.Time) bool {
	return o.class.isManifest() && o.status == http.StatusOK && now.Before(o.expires.Add(o.ttl))
}

// fetchFunc starts an upstream request for key under ctx and returns as
// soon as its headers are in: the object (its body an empty fill whose
// cancel stops the request) and the response body to copy into it.
type fetchFunc func(ctx context.Context, key string, class class) (*object, io.ReadCloser, error)

// lookup is how a cache answered.
type lookup int

const (
	lookupHit       lookup = iota // complete and fresh
	lookupCoalesced               // joined a fill in progress
	lookupMiss                    // this request started the fill
	lookupStale                   // upstream failed; an expired playlist stood in
)

func (l lookup) String() string {
	return [...]string{"hit", "coalesced", "miss", "stale"}[l]
}

// cache is a set of shards, each a byte-bounded LRU with its own lock and
// its own flights (cache_flight.go), picked by key hash: no lock is shared
// by all keys. It is safe for concurrent use.
type cache struct {
	cfg    cacheConfig
	shards []*shard
	seed   maphash.Seed
	// The metrics of this cache's layer, resolved once: held counts the
	// requests waiting on a flight.
	held                               gauge
	evictions, expired, upstreamErrors prometheus.Counter
}

// gauge is what a cache does with its gauge of held requests.
type gauge interface {
	Inc()
	Dec()
}

// cacheConfig configures a cache.
type cacheConfig struct {
	// name labels the cache's metrics: its layer, "local" or "proxy".
	name string
	// shards is the number of partitions. Zero means 1.
	shards int
	// maxBytes bounds what the complete objects cost (object.cost),
	// split evenly among the shards. Required.
	maxBytes int64
	// countKeys makes the cache count the requests for each key, for
	// admit.
	countKeys bool
	// admit decides, when a fill completes, whether to keep it, given how
	// many requests its key has had (0 without countKeys). Nil means
	// keep every cacheable object.
	admit func(o *object, requests int) bool
	// metrics receives the cache's counts, labeled by name. Required.
	metrics *metrics
	// ctx is the parent of every fetch: the server's, canceled when it
	// stops. Required.
	ctx context.Context
	// crew runs the goroutines that copy response bodies into fills.
	// Required.
	crew *crew
	// sendfileMin is the smallest segment given a body file. Zero means
	// the constant sendfileMin.
	sendfileMin int
	// files bounds the body files of segments; a server's caches share
	// one. Nil means a budget of the cache's own.
	files *fileBudget
	// gate, when not nil, is asked before a fetch starts, with the key and
	// the address of the client whose request starts it; an error refuses
	// the fetch, and is every waiter's answer.
	gate func(key, client string) error
	// onComplete, when not nil, sees every object whose body completed.
	onComplete func(*object)
}

// shard is one partition of a cache.
type shard struct {
	c        *cache
	maxBytes int64
	// calls runs the flight of each key (flight.run), and gives its
	// answer to every request on it (cache_flight.go).
	calls singleflight.Group

	mu sync.Mutex
	// lru holds complete objects; guarded by mu.
	lru *simplelru.LRU[string, *object]
	// bytes is the size of the bodies in lru; guarded by mu.
	bytes int64
	// filling holds objects whose body is still arriving; guarded by mu.
	filling map[string]*object
	// flights holds the flight of each key whose call runs in calls:
	// both begin and end together, under mu (board, landLocked).
	flights map[string]*flight
	// counts holds recent keys' request counts, when the cache counts;
	// guarded by mu.
	counts *simplelru.LRU[string, int]
	// expiring holds the short-lived objects of lru by when they become
	// useless (cache_expiry.go); expired is set while one is removed.
	// Both guarded by mu.
	expiring expiries
	expired  bool
}

// newCache returns the cache cfg describes.
func newCache(cfg cacheConfig) *cache {
	cfg.shards = max(cfg.shards, 1)
	if cfg.sendfileMin <= 0 {
		cfg.sendfileMin = sendfileMin
	}
	if cfg.admit == nil {
		cfg.admit = func(*object, int) bool { return true }
	}
	if cfg.files == nil {
		cfg.files = newFileBudget()
	}
	m := cfg.metrics
	c := &cache{
		cfg:            cfg,
		seed:           maphash.MakeSeed(),
		held:           m.held.WithLabelValues(cfg.name),
		evictions:      m.evictions.WithLabelValues(cfg.name),
		expired:        m.expired.WithLabelValues(cfg.name),
		upstreamErrors: m.upstreamErrors.WithLabelValues(cfg.name),
	}
	for range cfg.shards {
		sh := &shard{c: c, maxBytes: cfg.maxBytes / int64(cfg.shards), filling: map[string]*object{}, flights: map[string]*flight{}}
		// The count bound is never reached: bytes decide evictions.
		sh.lru, _ = simplelru.NewLRU[string, *object](1<<30, sh.onEvict)
		if cfg.countKeys {
			sh.counts, _ = simplelru.NewLRU[string, int](16384, nil)
		}
		c.shards = append(c.shards, sh)
	}
	return c
}

func (c *cache) shard(key string) *shard {
	return c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// get returns the object for key: from the cache if fresh, else from one
// upstream fetch shared by every concurrent request for key. The fetch
// runs detached from ctx: a requester leaving does not stop it for others.
// It stops when every requester waiting for its headers has left; once
// they are in, the fill's readers decide (fill.detach). client is the
// address of the client asking ("" for the PoP itself or a peer), which
// the cache's gate judges when the request would start a fetch.
func (c *cache) get(ctx context.Context, key string, cl class, fetch fetchFunc, client string) (*object, lookup, error) {
	sh := c.shard(key)
	stale, res := sh.lookup(key, time.Now(), true)
	if res != nil {
		o, how := res, lookupHit
		if _, complete := o.body.Bytes(); !complete {
			how = lookupCoalesced
		}
		return o, how, nil
	}

	r, err := sh.fly(ctx, key, cl, fetch, client)
	if err != nil {
		return nil, lookupMiss, err // the client left
	}
	if r.Err != nil {
		if stale != nil && stale.usableStale(time.Now()) {
			return stale, lookupStale, nil
		}
		return nil, lookupMiss, r.Err
	}
	o := r.Val.(*object)
	if o.status >= 500 && stale != nil && stale.usableStale(time.Now()) {
		return stale, lookupStale, nil
	}
	how := lookupMiss
	if r.Shared {
		how = lookupCoalesced
	}
	return o, how, nil
}

// lookup returns the fresh object for key, filling or complete, or nil;
// and, when the complete one has expired, that stale object. A request
// (count) is counted against key when the cache counts.
func (sh *shard) lookup(key string, now time.Time, count bool) (stale, fresh *object) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if count && sh.counts != nil {
		n, _ := sh.counts.Get(key)
		sh.counts.Add(key, n+1)
	}
	if o, ok := sh.filling[key]; ok {
		return nil, o
	}
	o, ok := sh.lru.Get(key)
	if !ok {
		return nil, nil
	}
	if o.fresh(now) {
		return nil, o
	}
	return o, nil
}

// complete files a finished object: into the LRU if it succeeded and may
// be kept, evicting the oldest objects beyond the byte bound. It reports
// whether the body is complete.
func (sh *shard) complete(o *object) bool {
	_, _, err, _ := o.body.Next(1 << 62)
	var file *bodyFile
	if body, _ := o.body.Bytes(); err == nil && o.class == classSegment && len(body) >= sh.c.cfg.sendfileMin {
		sh.mu.Lock()
		keep := sh.admitsLocked(o)
		sh.mu.Unlock()
		if keep {
			// Made outside the lock; dropped if not kept after all.
			// Without one (no memfd here, out of descriptors), hits
			// are written.
			file, _ = newBodyFile(body, sh.c.cfg.files)
		}
	}
	o.body.release()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.filling[o.key] == o {
		delete(sh.filling, o.key)
	}
	if err != nil {
		if !errors.Is(err, errAborted) {
			sh.c.upstreamErrors.Inc()
		}
		return false
	}
	if !sh.admitsLocked(o) || o.hint != nil && o.hint.Load() == hintDropped {
		file.drop()
		return true
	}
	body, _ := o.body.Bytes()
	kept := withLength(o, len(body))
	if file != nil {
		if kept == o { // o is shared with the fill's readers
			c := *o
			kept = &c
		}
		kept.file = file
	}
	if !sh.fileLocked(kept) {
		file.drop()
	}
	return true
}

// fileLocked puts the complete object o into the LRU under o.key, in
// place of what it held there, and evicts the oldest objects beyond the
// byte bound. It reports false, filing nothing, for an object over the
// whole bound. The caller holds sh.mu.
func (sh *shard) fileLocked(o *object) bool {
	size := o.cost()
	if size > sh.maxBytes {
		return false
	}
	if _, ok := sh.lru.Peek(o.key); ok {
		sh.lru.Remove(o.key)
	}
	sh.lru.Add(o.key, o)
	sh.expireLocked(o)
	sh.bytes += size
	for sh.bytes > sh.maxBytes {
		if _, _, ok := sh.lru.RemoveOldest(); !ok {
			break
		}
	}
	return true
}

// admitsLocked reports whether the complete object o is to be kept. The
// caller holds sh.mu.
func (sh *shard) admitsLocked(o *object) bool {
	var requests int
	if sh.counts != nil {
		requests, _ = sh.counts.Peek(o.key)
	}
	return o.cacheable && sh.c.cfg.admit(o, requests)
}

// withLength returns o, or for a body that came without a Content-Length
// (streamed by the origin while it was produced) a copy of o that has
// it: the requests served from the cache get the length.
func withLength(o *object, n int) *object {
	if _, ok := o.header["Content-Length"]; ok {
		return o
	}
	c := *o
	c.header = o.header.Clone()
	c.header["Content-Length"] = []string{strconv.Itoa(n)}
	return &c
}

// objectOverhead is what an object costs besides its body (headers, key,
// bookkeeping), counted against the byte bound.
const objectOverhead = 1024

// onEvict keeps the byte count; it runs with sh.mu held (simplelru calls it
// from Add, Remove and RemoveOldest).
func (sh *shard) onEvict(_ string, o *object) {
	sh.bytes -= o.cost()
	o.file.drop()
	if sh.expired {
		sh.c.expired.Inc()
		return
	}
	sh.c.evictions.Inc()
}

// dropFiles closes the bodyFiles of every object held, once the server
// has stopped: hits are written from the heap from then on.
func (c *cache) dropFiles() {
	for _, sh := range c.shards {
		sh.mu.Lock()
		for _, o := range sh.lru.Values() {
			o.file.drop()
		}
		sh.mu.Unlock()
	}
}

// size returns the bytes held by complete objects.
func (c *cache) size() int64 {
	var n int64
	for _, sh := range c.shards {
		sh.mu.Lock()
		n += sh.bytes
		sh.mu.Unlock()
	}
	return n
}

package pop

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// object is one response held by a cache: status, the headers to replay,
// and a body that may still be arriving. It is immutable once published.
type object struct {
	key    string
	class  class
	status int
	header http.Header
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
}

// sendfileMin is the smallest segment given a bodyFile: below it, the
// copy sendfile saves costs less than its system calls.
const sendfileMin = 32 << 10

// cost is what o counts against its shard's byte bound: its body, twice
// when it also has a bodyFile, its key and headers, and its bookkeeping.
// It is what o holds in the heap, so that many small objects (404s) are
// bounded as tightly as a few large ones.
func (o *object) cost() int64 {
	body, _ := o.body.Bytes()
	n := int64(len(body)) + int64(len(o.key)) + headerCost(o.header) + objectOverhead
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
// its own singleflight group, picked by key hash: no lock is shared by all
// keys. It is safe for concurrent use.
type cache struct {
	name   string
	shards []*shard
	seed   maphash.Seed
	// admit decides, when a fill completes, whether to keep it, given how
	// many requests its key has had (counted only when countKeys is set).
	admit     func(o *object, requests int) bool
	countKeys bool
	metrics   *metrics
	// ctx is the parent of every fetch: the server's, canceled when it stops.
	ctx context.Context
	// goroutines owns the goroutines that copy response bodies into fills.
	goroutines *group
	// files bounds the body files of segments; shared by a server's caches.
	files *fileBudget
	// gate, when not nil, is asked before a fetch starts, with the key and
	// the address of the client whose request starts it; an error refuses
	// the fetch, and is every waiter's answer.
	gate func(key, client string) error
	// onComplete, when not nil, sees every object whose body completed.
	onComplete func(*object)
	// boarded, when set (by tests, before use), is called when a request
	// has joined or started a flight (cache_flight.go).
	boarded func(key string)
}

// shard is one partition of a cache.
type shard struct {
	c        *cache
	maxBytes int64
	group    singleflight.Group

	mu sync.Mutex
	// lru holds complete objects; guarded by mu.
	lru *simplelru.LRU[string, *object]
	// bytes is the size of the bodies in lru; guarded by mu.
	bytes int64
	// filling holds objects whose body is still arriving; guarded by mu.
	filling map[string]*object
	// flights holds the fetches waiting for their upstream's headers, by
	// key; guarded by mu. flightSeq numbers them.
	flights   map[string]*flight
	flightSeq uint64
	// counts holds recent keys' request counts, when the cache counts;
	// guarded by mu.
	counts *simplelru.LRU[string, int]
	// expiring holds the short-lived objects of lru by when they become
	// useless (cache_expiry.go); expired is set while one is removed.
	// Both guarded by mu.
	expiring expiries
	expired  bool
}

// newCache returns a cache of n shards sharing maxBytes.
// Its fetches run under ctx and their goroutines are owned by goroutines.
func newCache(name string, n int, maxBytes int64, countKeys bool, admit func(*object, int) bool, m *metrics, ctx context.Context, goroutines *group) *cache {
	c := &cache{name: name, seed: maphash.MakeSeed(), admit: admit, countKeys: countKeys, metrics: m, ctx: ctx, goroutines: goroutines, files: newFileBudget()}
	for range n {
		sh := &shard{c: c, maxBytes: maxBytes / int64(n), filling: map[string]*object{}, flights: map[string]*flight{}}
		// The count bound is never reached: bytes decide evictions.
		sh.lru, _ = simplelru.NewLRU[string, *object](1<<30, sh.onEvict)
		if countKeys {
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

	c.metrics.held.WithLabelValues(c.name).Inc()
	fl := sh.board(key, client)
	ch := sh.group.DoChan(fl.id, func() (any, error) {
		if sh.landedFlight(fl) {
			// fl's call ended between this request's board and DoChan:
			// its answer is gone with it; the request starts over.
			return nil, errFlightOver
		}
		// Someone may have filled it while we queued for the flight.
		if _, o := sh.lookup(key, time.Now(), false); o != nil {
			sh.land(fl)
			fl.cancel()
			return o, nil
		}
		if c.gate != nil {
			if err := c.gate(key, fl.client); err != nil {
				sh.land(fl)
				fl.cancel()
				return nil, err
			}
		}
		o, body, err := fetch(fl.ctx, key, cl)
		if err != nil {
			sh.land(fl)
			fl.cancel()
			return nil, err
		}
		if err := sh.startFill(fl, o, body); err != nil {
			return nil, err
		}
		return o, nil
	})
	var r singleflight.Result
	select {
	case r = <-ch:
		c.metrics.held.WithLabelValues(c.name).Dec()
		sh.leave(fl, false)
	case <-ctx.Done():
		c.metrics.held.WithLabelValues(c.name).Dec()
		sh.leave(fl, true)
		return nil, lookupMiss, ctx.Err()
	}
	if errors.Is(r.Err, errFlightOver) {
		return c.get(ctx, key, cl, fetch, client)
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

// startFill publishes o, the answer of fl, as filling and copies body
// into it; once the body is complete, o moves into the LRU (or is
// dropped). If every request waiting for fl has left meanwhile, it
// returns errAborted instead: o was canceled with fl and is not shown to
// anyone.
func (sh *shard) startFill(fl *flight, o *object, body io.ReadCloser) error {
	sh.mu.Lock()
	if fl.landed { // abandoned (leave)
		sh.mu.Unlock()
		body.Close()
		return errAborted
	}
	sh.filling[o.key] = o
	sh.landLocked(fl)
	sh.mu.Unlock()
	started := sh.c.goroutines.Go(func() {
		defer fl.cancel()
		o.body.readFrom(body)
		body.Close()
		if sh.complete(o) && sh.c.onComplete != nil {
			sh.c.onComplete(o)
		}
	})
	if !started { // the server is stopping: the waiters get an error
		body.Close()
		o.body.Finish(errStopping)
		sh.complete(o)
		fl.cancel()
	}
	return nil
}

// errStopping fails the fills the server could not start because it is
// stopping; like an abandoned fill, it is no upstream error.
var errStopping = fmt.Errorf("%w: the PoP is stopping", errAborted)

// complete files a finished object: into the LRU if it succeeded and may
// be kept, evicting the oldest objects beyond the byte bound. It reports
// whether the body is complete.
func (sh *shard) complete(o *object) bool {
	_, _, err, _ := o.body.Next(1 << 62)
	var file *bodyFile
	if body, _ := o.body.Bytes(); err == nil && o.class == classSegment && len(body) >= sendfileMin {
		sh.mu.Lock()
		keep := sh.admitsLocked(o)
		sh.mu.Unlock()
		if keep {
			// Made outside the lock; dropped if not kept after all.
			// Without one (no memfd here, out of descriptors), hits
			// are written.
			file, _ = newBodyFile(body, sh.c.files)
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
			sh.c.metrics.upstreamErrors.WithLabelValues(sh.c.name).Inc()
		}
		return false
	}
	if !sh.admitsLocked(o) {
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
	size := kept.cost()
	if size > sh.maxBytes {
		file.drop()
		return true
	}
	if _, ok := sh.lru.Peek(o.key); ok {
		sh.lru.Remove(o.key)
	}
	sh.lru.Add(o.key, kept)
	sh.expireLocked(kept)
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
	return o.cacheable && sh.c.admit(o, requests)
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
		sh.c.metrics.expired.WithLabelValues(sh.c.name).Inc()
		return
	}
	sh.c.metrics.evictions.WithLabelValues(sh.c.name).Inc()
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

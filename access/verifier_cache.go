package access

import (
	"crypto/ed25519"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// The cache of verified tokens is split in shards, each with its own
// lock, so that requests on many cores rarely wait for one another.
const (
	maxShards      = 64
	minShardTokens = 256
)

// shard is one part of the cache of verified tokens.
type shard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *entry] // guarded by mu, as are its entries' addrs
	_   [128 - 16]byte                 // one shard per cache line (pair), not shared by cores
}

// entry is a verified token.
type entry struct {
	claims Claims
	from   time.Time // NotBefore less the leeway; zero for none
	until  time.Time // Expires plus the leeway
	kid    string
	pub    ed25519.PublicKey // the key that signed it
	keys   *keySet           // the last generation of keys known to hold kid as pub

	// addrs are the addresses that used the token lately, at most
	// claims.MaxAddrs (the slice is made with that capacity). Guarded by
	// the shard's mu.
	addrs []seen
}

// seen is when an address last used a token.
type seen struct {
	addr netip.Addr
	at   int64 // Unix nanoseconds
}

// newShards returns shards holding at most entries (> 0) tokens in all,
// and how many each holds: a power of two of them, up to maxShards, each
// holding at least minShardTokens (or all, when entries is smaller).
func newShards(entries int) ([]shard, int) {
	n := 1
	for n < maxShards && entries/(2*n) >= minShardTokens {
		n *= 2
	}
	size := entries / n
	shards := make([]shard, n)
	for i := range shards {
		// The size is positive: NewLRU cannot fail.
		shards[i].lru, _ = simplelru.NewLRU[string, *entry](size, nil)
	}
	return shards, size
}

// shardKeyLen is how much of a token, at its end, picks its shard.
const shardKeyLen = 16

// shard returns the shard of token, by a hash of its last shardKeyLen
// bytes: the end of the signature, spread evenly among tokens; only a
// signed token is cached, so only the issuer could make tokens that
// crowd one shard. The map of the shard hashes the whole token.
func (v *Verifier) shard(token string) *shard {
	return &v.shards[maphash.String(v.seed, token[max(0, len(token)-shardKeyLen):])&uint64(len(v.shards)-1)]
}

// Len returns the number of tokens cached.
func (v *Verifier) Len() int {
	n := 0
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}

// admitLocked reports whether a client at a may use the token now, and
// if so marks a active: it may when it used the token within window, or
// when fewer than claims.MaxAddrs other addresses did. When the token
// is in use from as many addresses as it allows, a new one is refused
// and those keep working; an address that has not used it for window
// frees its place. The shard is locked.
func (e *entry) admitLocked(a netip.Addr, now, window int64) bool {
	free := -1
	for i := range e.addrs {
		s := &e.addrs[i]
		if s.addr == a {
			s.at = now
			return true
		}
		if free < 0 && now-s.at >= window {
			free = i
		}
	}
	switch {
	case free >= 0:
		e.addrs[free] = seen{a, now}
	case len(e.addrs) < e.claims.MaxAddrs:
		e.addrs = append(e.addrs, seen{a, now}) // within the capacity made
	default:
		return false
	}
	return true
}

// subscriber returns the address a client is counted as: an IPv4
// address, or the /64 of an IPv6 one, which a subscriber's devices
// share and whose privacy addresses change (RFC 8981).
func subscriber(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

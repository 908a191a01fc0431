package access

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen bounds a token, in bytes: a longer one is invalid without
// being decoded. Tokens of this package are about 200 bytes; a request's
// path and query hold at most layout.MaxURI (4096).
const MaxTokenLen = 2048

// Config configures a Verifier.
type Config struct {
	// Keys are the public keys tokens may be signed with, by key id.
	// Required: at least one. Replace them at run time with SetKeys.
	Keys KeySet
	// Revocations are the revoked sessions. Nil means none. Replace them
	// at run time with SetRevocations (see RevocationFile).
	Revocations *RevocationSet
	// CacheEntries bounds the tokens whose verification is remembered,
	// in LRU order. Zero means 65536. A token costs about 450 bytes
	// besides its own length (700 bytes for a 250-byte token), plus 32
	// bytes for each address its MaxAddrs allows, at most MaxAddrsCap:
	// 65536 tokens of 250 bytes take 46 MB, 195 MB at worst
	// (BenchmarkCacheMemory measures it).
	CacheEntries int
	// AddressWindow is how long a client address counts against a
	// token's MaxAddrs after its last request. Zero means one minute.
	AddressWindow time.Duration
	// Leeway is the clock skew tolerated on exp and nbf. Zero means none.
	Leeway time.Duration
	// Now tells the time. Nil means time.Now.
	Now func() time.Time
	// Logger receives, at debug level, why tokens that were not cached
	// were refused (an invalid token at each request: it is never
	// cached), and at info level the key ids after SetKeys. Nil means
	// discard.
	Logger *slog.Logger
}

// Verifier checks tokens against the stream and client of a request. It
// remembers each token it verified, with its claims (a bounded LRU
// sharded by the token's hash), so that a token seen before costs a map
// lookup and a few comparisons (revocation, expiry, stream, network,
// address limit), about 0.1 µs, and no allocation; only a token not
// seen before costs a signature check and its decoding, about 70 µs.
// An invalid token is never cached: each request with one costs that
// again. A Verifier is safe for concurrent use.
type Verifier struct {
	now    func() time.Time
	log    *slog.Logger
	window time.Duration
	leeway time.Duration

	keys    atomic.Pointer[keySet]
	revoked atomic.Pointer[RevocationSet]

	seed   maphash.Seed
	shards []shard
}

// keySet is one generation of keys: a cache entry made under another one
// is checked again before use.
type keySet struct{ m KeySet }

// New returns a Verifier configured by a copy of cfg.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Keys.validate(); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	switch {
	case cfg.CacheEntries < 0:
		return nil, fmt.Errorf("access: cache entries %d < 0", cfg.CacheEntries)
	case cfg.AddressWindow < 0:
		return nil, fmt.Errorf("access: address window %v < 0", cfg.AddressWindow)
	case cfg.Leeway < 0:
		return nil, fmt.Errorf("access: leeway %v < 0", cfg.Leeway)
	}
	v := &Verifier{now: cfg.Now, log: cfg.Logger, window: cfg.AddressWindow, leeway: cfg.Leeway, seed: maphash.MakeSeed()}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.window == 0 {
		v.window = time.Minute
	}
	entries := cfg.CacheEntries
	if entries == 0 {
		entries = 65536
	}
	v.shards, _ = newShards(entries)
	v.keys.Store(&keySet{cfg.Keys.clone()})
	v.revoked.Store(cfg.Revocations)
	return v, nil
}

// SetKeys replaces the public keys. Tokens signed with a key no longer
// held become invalid at their next request.
func (v *Verifier) SetKeys(ks KeySet) error {
	if err := ks.validate(); err != nil {
		return fmt.Errorf("access: %w", err)
	}
	v.keys.Store(&keySet{ks.clone()})
	v.log.Info("token keys", "kids", slices.Sorted(maps.Keys(ks)))
	return nil
}

// SetRevocations replaces the revoked sessions; nil means none. It takes
// effect at the next request of every token, cached or not.
func (v *Verifier) SetRevocations(rs *RevocationSet) { v.revoked.Store(rs) }

// Verify returns nil when token admits a request for stream from a
// client at addr, else why not (see Reason and Status): ErrNoToken for
// the empty token, else ErrInvalid, ErrRevoked, ErrExpired,
// ErrNotYetValid, ErrWrongStream, ErrNetwork or ErrTooManyAddresses, in
// that order. For a token with MaxAddrs, a request it admits marks addr
// active for the AddressWindow. The zero addr is outside every network,
// and one address like any other.
//
// On a token seen before, Verify returns the sentinels bare and does
// not allocate; token may be a substring of a larger buffer (the cache
// keeps a copy).
func (v *Verifier) Verify(token, stream string, addr netip.Addr) error {
	if token == "" {
		return ErrNoToken
	}
	now := v.now()
	sh := v.shard(token)
	sh.mu.Lock()
	e, ok := sh.lru.Get(token)
	if ok && !v.keyedLocked(e) {
		sh.lru.Remove(token)
		ok = false
	}
	if !ok {
		sh.mu.Unlock()
		fresh, err := v.parse(token)
		if err != nil {
			v.log.Debug("token refused", "reason", Reason(err), "error", err)
			return err
		}
		sh.mu.Lock()
		// Another request may have brought it in meanwhile: keep that
		// one, and the addresses it saw.
		if e, ok = sh.lru.Get(token); !ok {
			e = fresh
			sh.lru.Add(strings.Clone(token), e)
		}
	}
	err := v.checkLocked(e, stream, addr, now)
	sh.mu.Unlock()
	return err
}

// checkLocked checks a request against e's claims. The shard holding e
// is locked: it guards e.addrs.
func (v *Verifier) checkLocked(e *entry, stream string, addr netip.Addr, now time.Time) error {
	c := &e.claims
	// RFC 7519 4.1.4: the current time MUST be before exp; 4.1.5: after
	// or equal to nbf; "some small leeway" for clock skew.
	switch {
	case c.Session != "" && v.revoked.Load().Has(c.Session):
		return ErrRevoked
	case !now.Before(e.until):
		return ErrExpired
	case now.Before(e.from):
		return ErrNotYetValid
	case !c.Admits(stream):
		return ErrWrongStream
	}
	addr = addr.Unmap()
	if c.Network.IsValid() && !c.Network.Contains(addr.WithZone("")) {
		return ErrNetwork
	}
	if c.MaxAddrs > 0 && !e.admitLocked(subscriber(addr), now.UnixNano(), int64(v.window)) {
		return ErrTooManyAddresses
	}
	return nil
}

// keyedLocked reports whether e's key is still held, as it was, by the
// Verifier, and notes the current generation in e when it is.
func (v *Verifier) keyedLocked(e *entry) bool {
	cur := v.keys.Load()
	if e.keys == cur {
		return true
	}
	if k, ok := cur.m[e.kid]; !ok || !k.Equal(e.pub) {
		return false
	}
	e.keys = cur
	return true
}

// Parse checks token's signature and claims and returns them, with the
// id of the key that signed it; it neither uses nor fills the cache, and
// leaves out what depends on the time, the stream and the client. For
// tools: the PoP calls Verify.
func (v *Verifier) Parse(token string) (Claims, string, error) {
	e, err := v.parse(token)
	if err != nil {
		return Claims{}, "", err
	}
	return e.claims, e.kid, nil
}

// parse verifies token and returns a new cache entry of it.
func (v *Verifier) parse(token string) (*entry, error) {
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrInvalid, len(token), MaxTokenLen)
	}
	e := &entry{keys: v.keys.Load()}
	var w wireClaims
	// Time claims are checked by checkLocked, on the first request and
	// on every other one alike.
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	_, err := p.ParseWithClaims(token, &w, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, errors.New("not EdDSA")
		}
		// RFC 7515 4.1.11: extensions listed in "crit" that the
		// recipient does not understand make the JWS invalid; we
		// understand none.
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("a crit header")
		}
		kid, ok := t.Header["kid"].(string)
		if !ok {
			return nil, errors.New("no kid")
		}
		k, ok := e.keys.m[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		e.kid, e.pub = kid, k
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.claims, err = w.claims(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	e.until = e.claims.Expires.Add(v.leeway)
	if !e.claims.NotBefore.IsZero() {
		e.from = e.claims.NotBefore.Add(-v.leeway)
	}
	if e.claims.MaxAddrs > 0 {
		e.addrs = make([]seen, 0, e.claims.MaxAddrs)
	}
	return e, nil
}

package access

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTooManyAddresses: a token for two addresses admits two, refuses a
// third while both are active, keeps admitting those two, and admits the
// third once one of them has been silent for the window.
func TestTooManyAddresses(t *testing.T) {
	f := newFixture(t, Config{AddressWindow: time.Minute})
	tok := mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.MaxAddrs = 2 }))
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	steps := []struct {
		after time.Duration
		addr  netip.Addr
		want  error
	}{
		{0, a, nil},
		{0, b, nil},
		{0, c, ErrTooManyAddresses}, // the newest address is refused
		{0, a, nil},                 // the others keep working
		{30 * time.Second, a, nil},  // a stays active; b was last seen at 0
		{29 * time.Second, c, ErrTooManyAddresses},        // b silent for 59 s: still active
		{time.Second, c, nil},                             // b silent for 60 s: its place is free
		{0, b, ErrTooManyAddresses},                       // b comes back: a and c are active
		{0, netip.MustParseAddr("::ffff:192.0.2.3"), nil}, // c, IPv4-mapped
		{0, netip.Addr{}, ErrTooManyAddresses},            // an unknown address is one more
	}
	for i, s := range steps {
		f.clock.Add(s.after)
		if err := f.v.Verify(tok, "demo", s.addr); err != s.want {
			t.Errorf("step %d (%v): %v, want %v", i, s.addr, err, s.want)
		}
	}
}

// TestTooManyAddressesIPv6: a subscriber's /64 is one address, another
// /64 another one; a wrong stream or network does not take a place.
func TestTooManyAddressesIPv6(t *testing.T) {
	f := newFixture(t, Config{})
	tok := mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.MaxAddrs = 1 }))
	steps := []struct {
		addr, stream string
		want         error
	}{
		{"2001:db8:0:1::10", "other", ErrWrongStream},
		{"2001:db8:0:1::10", "demo", nil},
		{"2001:db8:0:1:aaaa::1", "demo", nil}, // a privacy address of the same /64
		{"2001:db8:0:2::10", "demo", ErrTooManyAddresses},
		{"192.0.2.1", "demo", ErrTooManyAddresses}, // the same home on IPv4 is another address
	}
	for i, s := range steps {
		if err := f.v.Verify(tok, s.stream, netip.MustParseAddr(s.addr)); err != s.want {
			t.Errorf("step %d (%s): %v, want %v", i, s.addr, err, s.want)
		}
	}
}

// TestCacheBound: the cache holds at most CacheEntries tokens, the least
// recently used leaving first; one that left is verified again.
func TestCacheBound(t *testing.T) {
	f := newFixture(t, Config{CacheEntries: 2})
	toks := make([]string, 3)
	for i := range toks {
		toks[i] = mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.Session = fmt.Sprint("s", i) }))
	}
	for _, tok := range append(toks, toks[0]) {
		if err := f.v.Verify(tok, "demo", netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		if n := f.v.Len(); n > 2 {
			t.Fatalf("%d tokens cached, want at most 2", n)
		}
	}
	for _, n := range []int{1, 255, 511, 512, 4096, 65536, 1 << 20} {
		shards, size := newShards(n)
		if k := len(shards); k&(k-1) != 0 || k > maxShards || size < 1 || k*size > n || (k > 1 && size < minShardTokens) {
			t.Errorf("%d entries: %d shards of %d", n, k, size)
		}
	}
}

// TestVerifyConcurrent verifies tokens from many goroutines at once, new
// and cached, evicted and brought back, while keys and revocations are
// replaced, for the race detector.
func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t, Config{CacheEntries: 4})
	limited := mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.MaxAddrs = 3 }))
	toks := []string{f.valid, limited}
	for i := range 6 {
		toks = append(toks, mustIssue(t, f.k2, "k2", f.with(func(c *Claims) { c.Session = fmt.Sprint("c", i) })))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			for i := range 200 {
				if err := f.v.Verify(toks[i%len(toks)], "demo", addr); err != nil && !errors.Is(err, ErrTooManyAddresses) {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := f.v.SetKeys(f.keys); err != nil {
				t.Error(err)
			}
			f.v.SetRevocations(NewRevocationSet("nobody"))
		}
	})
	wg.Wait()
	if n := f.v.Len(); n > 4 {
		t.Errorf("%d tokens cached, want at most 4", n)
	}
}

// cachedCases are tokens, each verified once, then checked for
// allocations and timed on the cached path.
func cachedCases(t testing.TB, f *fixture) []struct {
	name, token, stream string
	addr                netip.Addr
	want                error
} {
	issue := func(change func(*Claims)) string { return mustIssue(t, f.k1, "k1", f.with(change)) }
	v4, v6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1")
	return []struct {
		name, token, stream string
		addr                netip.Addr
		want                error
	}{
		{"plain", f.valid, "demo", v4, nil},
		{"every claim", issue(func(c *Claims) {
			c.Stream, c.Prefix, c.Network, c.Session, c.MaxAddrs, c.NotBefore = "de", true, netip.MustParsePrefix("10.0.0.0/8"), "u42", 2, t0
		}), "demo", v4, nil},
		{"address limit, IPv6", issue(func(c *Claims) { c.MaxAddrs = 2 }), "demo", v6, nil},
		{"wrong stream", f.valid, "other", v4, ErrWrongStream},
		{"revoked", issue(func(c *Claims) { c.Session = "gone" }), "demo", v4, ErrRevoked},
		{"network", issue(func(c *Claims) { c.Network = netip.MustParsePrefix("192.0.2.0/24") }), "demo", v4, ErrNetwork},
	}
}

// TestVerifyCachedAllocates: a token seen before costs no allocation,
// admitted or refused, even when it is a substring of a larger buffer.
func TestVerifyCachedAllocates(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tt := range cachedCases(t, f) {
		t.Run(tt.name, func(t *testing.T) {
			path := "/t/" + tt.token + "/live/demo/index.m3u8"
			tok := path[3 : 3+len(tt.token)]
			if err := f.v.Verify(tok, tt.stream, tt.addr); err != tt.want && !errors.Is(err, tt.want) {
				t.Fatalf("first: %v, want %v", err, tt.want)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if err := f.v.Verify(tok, tt.stream, tt.addr); err != tt.want {
					t.Fatalf("cached: %v, want %v", err, tt.want)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per cached verification, want 0", allocs)
			}
		})
	}
}

// BenchmarkVerify times a token's first verification (each request with
// another token, so that each is verified in full) against the cached
// path, on one core and on all.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, Config{})
	b.Run("first", func(b *testing.B) {
		// One cache entry, two tokens taking turns: every Verify misses.
		g := newFixture(b, Config{CacheEntries: 1})
		toks := []string{g.valid, mustIssue(b, g.k2, "k2", g.claims)}
		addr := netip.MustParseAddr("10.1.2.3")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := g.v.Verify(toks[i%2], "demo", addr); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tt := range cachedCases(b, f)[:3] {
		if err := f.v.Verify(tt.token, tt.stream, tt.addr); err != nil {
			b.Fatal(err)
		}
		b.Run("cached/"+strings.ReplaceAll(tt.name, " ", "-"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.v.Verify(tt.token, tt.stream, tt.addr); err != tt.want {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached/parallel-1000-tokens", func(b *testing.B) {
		toks := make([]string, 1000)
		for i := range toks {
			toks[i] = mustIssue(b, f.k1, "k1", f.with(func(c *Claims) { c.Session = fmt.Sprint("p", i) }))
			if err := f.v.Verify(toks[i], "demo", netip.Addr{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			addr := netip.MustParseAddr("10.1.2.3")
			for i := 0; pb.Next(); i++ {
				if err := f.v.Verify(toks[i%len(toks)], "demo", addr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCacheMemory measures the heap a cached token holds, with a
// token of typical size and one with an address limit of MaxAddrsCap.
func BenchmarkCacheMemory(b *testing.B) {
	for _, maxAddrs := range []int{0, MaxAddrsCap} {
		b.Run(fmt.Sprint("max-addrs-", maxAddrs), func(b *testing.B) {
			const n = 20000
			f := newFixture(b, Config{CacheEntries: n})
			toks := make([]string, n)
			length := 0
			for i := range toks {
				toks[i] = mustIssue(b, f.k1, "k1", f.with(func(c *Claims) {
					c.Session, c.MaxAddrs, c.Network = fmt.Sprintf("session-%08d", i), maxAddrs, netip.MustParsePrefix("10.0.0.0/8")
				}))
				length += len(toks[i])
			}
			var before, after runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				v, err := New(Config{Keys: f.keys, Now: f.clock.Now, CacheEntries: n})
				if err != nil {
					b.Fatal(err)
				}
				for _, tok := range toks {
					if err := v.Verify(tok, "demo", netip.MustParseAddr("10.1.2.3")); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(v)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/token")
			b.ReportMetric(float64(length)/n, "token-bytes")
		})
	}
}

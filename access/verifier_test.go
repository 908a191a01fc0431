package access

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fixture is a Verifier holding keys k1 and k2 (not k3), with session
// "gone" revoked, on a clock at t0.
type fixture struct {
	v          *Verifier
	clock      *clock
	pub1, pub2 ed25519.PublicKey
	k1, k2, k3 ed25519.PrivateKey
	keys       KeySet
	revoked    *RevocationSet
	claims     Claims // valid claims for stream demo
	valid      string // a token of claims, signed by k1
	pubPEM     string // pub1 in PEM
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	pub1, k1 := testKey(1)
	pub2, k2 := testKey(2)
	_, k3 := testKey(3)
	f := &fixture{clock: newClock(t0), pub1: pub1, pub2: pub2, k1: k1, k2: k2, k3: k3}
	f.keys = KeySet{"k1": pub1, "k2": pub2}
	f.revoked = NewRevocationSet("gone")
	f.claims = Claims{Stream: "demo", IssuedAt: t0.Add(-time.Minute), Expires: t0.Add(time.Hour)}
	f.valid = mustIssue(t, k1, "k1", f.claims)
	pemBytes, err := MarshalPublicKey(pub1, "")
	if err != nil {
		t.Fatal(err)
	}
	f.pubPEM = string(pemBytes)
	if cfg.Keys == nil {
		cfg.Keys = f.keys
	}
	if cfg.Revocations == nil {
		cfg.Revocations = f.revoked
	}
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	if f.v, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// with returns the fixture's valid claims changed by change.
func (f *fixture) with(change func(*Claims)) Claims {
	c := f.claims
	change(&c)
	return c
}

type verifyCase struct {
	name   string
	token  string
	stream string
	addr   string
	want   error
}

// verifyCases are the table of TestVerify, and the seeds of FuzzVerify.
func verifyCases(t testing.TB, f *fixture) []verifyCase {
	issue := func(key ed25519.PrivateKey, kid string, change func(*Claims)) string {
		return mustIssue(t, key, kid, f.with(change))
	}
	same := func(*Claims) {}
	parts := strings.Split(f.valid, ".")
	other := strings.Split(issue(f.k1, "k1", func(c *Claims) { c.Stream = "other" }), ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[10] ^= 1
	flipped := base64.RawURLEncoding.EncodeToString(sig)
	// 64 bytes are 86 characters of 6 bits: the last one has 4 stray
	// bits, which strict decoding wants zero.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	stray := parts[2][:85] + string(alphabet[strings.IndexByte(alphabet, parts[2][85])|1])

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": "demo", "exp": t0.Add(time.Hour).Unix()}
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid} }

	return []verifyCase{
		{"valid", f.valid, "demo", "192.0.2.1", nil},
		{"valid, second key (rotation)", issue(f.k2, "k2", same), "demo", "192.0.2.1", nil},
		{"valid, unknown address", f.valid, "demo", "", nil},
		{"no token", "", "demo", "192.0.2.1", ErrNoToken},
		{"expired", issue(f.k1, "k1", func(c *Claims) { c.Expires = t0.Add(-time.Second) }), "demo", "192.0.2.1", ErrExpired},
		{"expires now", issue(f.k1, "k1", func(c *Claims) { c.Expires = t0 }), "demo", "192.0.2.1", ErrExpired},
		{"not yet valid", issue(f.k1, "k1", func(c *Claims) { c.NotBefore = t0.Add(time.Minute) }), "demo", "192.0.2.1", ErrNotYetValid},
		{"valid from now", issue(f.k1, "k1", func(c *Claims) { c.NotBefore = t0 }), "demo", "192.0.2.1", nil},
		{"wrong stream", f.valid, "other", "192.0.2.1", ErrWrongStream},
		{"not a prefix token", f.valid, "demo2", "192.0.2.1", ErrWrongStream},
		{"prefix match", issue(f.k1, "k1", func(c *Claims) { c.Stream, c.Prefix = "cam-", true }), "cam-7", "192.0.2.1", nil},
		{"prefix, the prefix itself", issue(f.k1, "k1", func(c *Claims) { c.Stream, c.Prefix = "cam-", true }), "cam-", "192.0.2.1", nil},
		{"prefix mismatch", issue(f.k1, "k1", func(c *Claims) { c.Stream, c.Prefix = "cam-", true }), "cab-7", "192.0.2.1", ErrWrongStream},
		{"unknown kid", issue(f.k3, "k3", same), "demo", "192.0.2.1", ErrInvalid},
		{"wrong kid", issue(f.k1, "k2", same), "demo", "192.0.2.1", ErrInvalid},
		{"no kid", signRaw(t, map[string]any{"alg": "EdDSA"}, claims, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"kid not a string", signRaw(t, map[string]any{"alg": "EdDSA", "kid": 1}, claims, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"tampered payload", parts[0] + "." + other[1] + "." + parts[2], "other", "192.0.2.1", ErrInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipped, "demo", "192.0.2.1", ErrInvalid},
		{"signature respelled", parts[0] + "." + parts[1] + "." + stray, "demo", "192.0.2.1", ErrInvalid},
		{"signature padded", f.valid + "==", "demo", "192.0.2.1", ErrInvalid},
		{"no signature", parts[0] + "." + parts[1] + ".", "demo", "192.0.2.1", ErrInvalid},
		{"two segments", parts[0] + "." + parts[1], "demo", "192.0.2.1", ErrInvalid},
		{"four segments", f.valid + ".x", "demo", "192.0.2.1", ErrInvalid},
		{"garbage", "hello", "demo", "192.0.2.1", ErrInvalid},
		{"too long", f.valid + strings.Repeat("A", MaxTokenLen), "demo", "192.0.2.1", ErrInvalid},
		{"network", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("10.0.0.0/8") }), "demo", "10.1.2.3", nil},
		{"network, IPv4-mapped client", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("10.0.0.0/8") }), "demo", "::ffff:10.1.2.3", nil},
		{"network mismatch", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("10.0.0.0/8") }), "demo", "192.0.2.1", ErrNetwork},
		{"network, unknown address", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("10.0.0.0/8") }), "demo", "", ErrNetwork},
		{"IPv6 network", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("2001:db8::/32") }), "demo", "2001:db8:1::7", nil},
		{"IPv6 network mismatch", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("2001:db8::/32") }), "demo", "2001:db9::7", ErrNetwork},
		{"IPv6 network, IPv4 client", issue(f.k1, "k1", func(c *Claims) { c.Network = netip.MustParsePrefix("2001:db8::/32") }), "demo", "192.0.2.1", ErrNetwork},
		{"IPv4-mapped network", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo", "exp": t0.Add(time.Hour).Unix(), "cidr": "::ffff:10.0.0.0/104"}, f.k1), "demo", "10.9.9.9", nil},
		{"revoked", issue(f.k1, "k1", func(c *Claims) { c.Session = "gone" }), "demo", "192.0.2.1", ErrRevoked},
		{"revoked before expired", issue(f.k1, "k1", func(c *Claims) { c.Session, c.Expires = "gone", t0.Add(-time.Hour) }), "demo", "192.0.2.1", ErrRevoked},
		{"another session", issue(f.k1, "k1", func(c *Claims) { c.Session = "u42" }), "demo", "192.0.2.1", nil},

		// Algorithm confusion: only EdDSA, only our keys.
		{"alg none", signRaw(t, hdr("none", "k1"), claims, nil), "demo", "192.0.2.1", ErrInvalid},
		{"alg none, signature", signRaw(t, hdr("none", "k1"), claims, nil) + parts[2], "demo", "192.0.2.1", ErrInvalid},
		{"HS256, public key as secret", signRaw(t, hdr("HS256", "k1"), claims, []byte(f.pub1)), "demo", "192.0.2.1", ErrInvalid},
		{"HS256, public key PEM as secret", signRaw(t, hdr("HS256", "k1"), claims, []byte(f.pubPEM)), "demo", "192.0.2.1", ErrInvalid},
		{"RS256", signRaw(t, hdr("RS256", "k1"), claims, rsaKey), "demo", "192.0.2.1", ErrInvalid},
		{"alg eddsa", b64(t, hdr("eddsa", "k1")) + "." + parts[1] + "." + parts[2], "demo", "192.0.2.1", ErrInvalid},
		{"embedded jwk", signRaw(t, map[string]any{"alg": "EdDSA", "kid": "k1", "jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(f.k3[32:])}}, claims, f.k3), "demo", "192.0.2.1", ErrInvalid},
		{"crit", signRaw(t, map[string]any{"alg": "EdDSA", "kid": "k1", "crit": []string{"b64"}, "b64": false}, claims, f.k1), "demo", "192.0.2.1", ErrInvalid},

		// Signed, but claims a PoP cannot use.
		{"no exp", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo"}, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"exp not a number", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo", "exp": "soon"}, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"no sub", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"exp": t0.Add(time.Hour).Unix()}, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"sub not a stream", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "de/mo", "exp": t0.Add(time.Hour).Unix()}, f.k1), "de/mo", "192.0.2.1", ErrInvalid},
		{"cidr malformed", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo", "exp": t0.Add(time.Hour).Unix(), "cidr": "10.0.0.0/33"}, f.k1), "demo", "10.0.0.1", ErrInvalid},
		{"addrs over the cap", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo", "exp": t0.Add(time.Hour).Unix(), "addrs": MaxAddrsCap + 1}, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"addrs negative", signRaw(t, hdr("EdDSA", "k1"), map[string]any{"sub": "demo", "exp": t0.Add(time.Hour).Unix(), "addrs": -1}, f.k1), "demo", "192.0.2.1", ErrInvalid},
		{"claims not an object", signRaw(t, hdr("EdDSA", "k1"), nil, f.k1), "demo", "192.0.2.1", ErrInvalid},
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tt := range verifyCases(t, f) {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := netip.ParseAddr(tt.addr)
			// Twice: the first verification, then the cached one.
			for i, pass := range []string{"first", "cached"} {
				err := f.v.Verify(tt.token, tt.stream, addr)
				t.Logf("%s: %v", pass, err)
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("%s verification: %v, want %v", pass, err, tt.want)
				}
				if i == 1 && err != nil && err != tt.want && !errors.Is(err, ErrInvalid) {
					t.Errorf("cached: %v, want the bare sentinel", err)
				}
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t, Config{Leeway: 30 * time.Second})
	tok := mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.NotBefore, c.Expires = t0.Add(20*time.Second), t0.Add(time.Minute) }))
	tests := []struct {
		at   time.Duration
		want error
	}{
		{-11 * time.Second, ErrNotYetValid},
		{-10 * time.Second, nil}, // nbf less the leeway
		{89 * time.Second, nil},
		{90 * time.Second, ErrExpired}, // exp plus the leeway
	}
	for _, tt := range tests {
		f.clock.Set(t0.Add(tt.at))
		if err := f.v.Verify(tok, "demo", netip.Addr{}); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("at t0%+v: %v, want %v", tt.at, err, tt.want)
		}
	}
}

// TestVerifyExpiresWhileCached: a cached token is checked against the
// clock at each request, and stops at exp.
func TestVerifyExpiresWhileCached(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.v.Verify(f.valid, "demo", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(f.claims.Expires.Add(-time.Nanosecond))
	if err := f.v.Verify(f.valid, "demo", netip.Addr{}); err != nil {
		t.Fatalf("just before exp: %v", err)
	}
	f.clock.Set(f.claims.Expires)
	if err := f.v.Verify(f.valid, "demo", netip.Addr{}); err != ErrExpired {
		t.Fatalf("at exp: %v, want %v", err, ErrExpired)
	}
}

// TestRevokeCached: a new revocation set reaches tokens already cached,
// and a set without the session lets them in again.
func TestRevokeCached(t *testing.T) {
	f := newFixture(t, Config{})
	tok := mustIssue(t, f.k1, "k1", f.with(func(c *Claims) { c.Session = "u42" }))
	addr := netip.MustParseAddr("192.0.2.1")
	steps := []struct {
		revoked *RevocationSet
		want    error
	}{
		{nil, nil},
		{NewRevocationSet("u1", "u42"), ErrRevoked},
		{NewRevocationSet("u1"), nil},
	}
	for i, s := range steps {
		f.v.SetRevocations(s.revoked)
		if err := f.v.Verify(tok, "demo", addr); err != s.want {
			t.Errorf("step %d: %v, want %v", i, err, s.want)
		}
	}
}

// TestSetKeys rotates keys at run time: tokens of a key dropped become
// invalid even when cached; a key id given another key invalidates the
// tokens of the old one.
func TestSetKeys(t *testing.T) {
	f := newFixture(t, Config{})
	by2 := mustIssue(t, f.k2, "k2", f.claims)
	for _, tok := range []string{f.valid, by2} {
		if err := f.v.Verify(tok, "demo", netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.v.SetKeys(KeySet{"k2": f.pub2}); err != nil {
		t.Fatal(err)
	}
	if err := f.v.Verify(f.valid, "demo", netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("k1 dropped: %v, want %v", err, ErrInvalid)
	}
	if err := f.v.Verify(by2, "demo", netip.Addr{}); err != nil {
		t.Errorf("k2 kept: %v", err)
	}
	pub3, _ := testKey(3)
	if err := f.v.SetKeys(KeySet{"k2": pub3}); err != nil {
		t.Fatal(err)
	}
	if err := f.v.Verify(by2, "demo", netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("k2 now another key: %v, want %v", err, ErrInvalid)
	}
	for _, bad := range []KeySet{nil, {"k1": f.pub1[:5]}, {"../k1": f.pub1}} {
		if err := f.v.SetKeys(bad); err == nil {
			t.Errorf("SetKeys(%v): no error", bad)
		}
	}
}

func TestNewConfig(t *testing.T) {
	pub, _ := testKey(1)
	keys := KeySet{"k1": pub}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Keys: keys}, true},
		{"no keys", Config{}, false},
		{"short key", Config{Keys: KeySet{"k1": pub[:31]}}, false},
		{"bad kid", Config{Keys: KeySet{"": pub}}, false},
		{"negative cache", Config{Keys: keys, CacheEntries: -1}, false},
		{"negative window", Config{Keys: keys, AddressWindow: -time.Second}, false},
		{"negative leeway", Config{Keys: keys, Leeway: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Errorf("New: %v, want ok %v", err, tt.ok)
			}
		})
	}
	// New keeps a copy of the keys.
	v, err := New(Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	delete(keys, "k1")
	if _, kid, err := v.Parse(newFixture(t, Config{}).valid); err != nil || kid != "k1" {
		t.Errorf("after the caller's map changed: %q %v", kid, err)
	}
}

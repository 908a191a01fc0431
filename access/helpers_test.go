package access

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the time of the tests' clocks.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testKey returns the key pair made from a seed of n bytes.
func testKey(n byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = n
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return priv.Public().(ed25519.PublicKey), priv
}

// clock is a settable clock for Config.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }

// mustIssue issues c signed by priv as kid.
func mustIssue(t testing.TB, priv ed25519.PrivateKey, kid string, c Claims) string {
	t.Helper()
	tok, err := Issue(priv, kid, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// b64 is the base64url of JSON v.
func b64(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(data)
}

// signRaw returns a token of any header and claims, signed with key by
// the method its "alg" names (nil key: no signature).
func signRaw(t testing.TB, header, claims map[string]any, key any) string {
	t.Helper()
	signing := b64(t, header) + "." + b64(t, claims)
	if key == nil {
		return signing + "."
	}
	m := jwt.GetSigningMethod(header["alg"].(string))
	sig, err := m.Sign(signing, key)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

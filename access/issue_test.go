package access

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestIssue(t *testing.T) {
	_, priv := testKey(1)
	ok := Claims{Stream: "demo", Expires: t0.Add(time.Hour)}
	with := func(change func(*Claims)) Claims { c := ok; change(&c); return c }
	tests := []struct {
		name   string
		kid    string
		claims Claims
		header string // the decoded header, or "" for an error
	}{
		{"minimal", "k1", ok, `{"alg":"EdDSA","kid":"k1"}`},
		{"prefix", "k1", with(func(c *Claims) { c.Stream, c.Prefix = "cam-", true }), `{"alg":"EdDSA","kid":"k1"}`},
		{"no stream", "k1", with(func(c *Claims) { c.Stream = "" }), ""},
		{"bad stream", "k1", with(func(c *Claims) { c.Stream = "a.b" }), ""},
		{"stream too long", "k1", with(func(c *Claims) { c.Stream = strings.Repeat("a", 65) }), ""},
		{"no expiry", "k1", with(func(c *Claims) { c.Expires = time.Time{} }), ""},
		{"max addrs over the cap", "k1", with(func(c *Claims) { c.MaxAddrs = MaxAddrsCap + 1 }), ""},
		{"negative max addrs", "k1", with(func(c *Claims) { c.MaxAddrs = -1 }), ""},
		{"session too long", "k1", with(func(c *Claims) { c.Session = strings.Repeat("s", maxSession+1) }), ""},
		{"network with host bits", "k1", with(func(c *Claims) { c.Network = netip.MustParsePrefix("10.1.2.3/8") }), ""},
		{"IPv4-mapped network", "k1", with(func(c *Claims) { c.Network = netip.MustParsePrefix("::ffff:10.0.0.0/104") }), ""},
		{"bad kid", "k/1", ok, ""},
		{"no kid", "", ok, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Issue(priv, tt.kid, tt.claims)
			if tt.header == "" {
				if err == nil {
					t.Fatalf("issued %s, want an error", tok)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			if err != nil || string(h) != tt.header {
				t.Errorf("header %s (%v), want %s", h, err, tt.header)
			}
		})
	}
	if _, err := Issue(priv[:10], "k1", ok); err == nil {
		t.Error("a short key: no error")
	}
}

// TestIssueRoundTrip: what Issue writes, Parse reads back as it was, to
// the second; and a typical token is about 200 bytes.
func TestIssueRoundTrip(t *testing.T) {
	f := newFixture(t, Config{})
	c := Claims{
		Stream: "cam-", Prefix: true, Network: netip.MustParsePrefix("2001:db8::/48"), Session: "4f1c2a9e-5b7d-4e0a-9c3f-1a2b3c4d5e6f",
		MaxAddrs: 2, Expires: t0.Add(time.Hour), NotBefore: t0.Add(-time.Minute), IssuedAt: t0.Add(-time.Minute),
	}
	tok := mustIssue(t, f.k2, "k2", c)
	got, kid, err := f.v.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "k2" || got.Stream != c.Stream || got.Prefix != c.Prefix || got.Network != c.Network || got.Session != c.Session ||
		got.MaxAddrs != c.MaxAddrs || !got.Expires.Equal(c.Expires) || !got.NotBefore.Equal(c.NotBefore) || !got.IssuedAt.Equal(c.IssuedAt) {
		t.Errorf("read back %+v (kid %s), want %+v", got, kid, c)
	}
	typical := mustIssue(t, f.k1, "k1", Claims{Stream: "demo", IssuedAt: t0, Expires: t0.Add(time.Hour)})
	t.Logf("typical token: %d bytes; every claim: %d bytes", len(typical), len(tok))
	if len(typical) > 200 || len(tok) > 340 {
		t.Errorf("tokens of %d and %d bytes: longer than they were", len(typical), len(tok))
	}
}

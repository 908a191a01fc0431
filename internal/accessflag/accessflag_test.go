package accessflag

import (
	"errors"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := access.MarshalPublicKey(pub, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k1.pub"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	revoked := filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(revoked, []byte("s1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"nothing", nil, true},
		{"keys, revocations, networks", []string{"-token-keys", dir, "-revoked", revoked, "-allow-networks", "10.0.0.0/8", "-deny-networks", "10.1.0.0/16", "-trusted-proxies", "192.0.2.1"}, true},
		{"revocations without keys", []string{"-revoked", revoked}, false},
		{"no such keys", []string{"-token-keys", filepath.Join(dir, "none")}, false},
		{"bad network", []string{"-allow-networks", "10.0.0.0/33"}, false},
		{"bad proxy", []string{"-trusted-proxies", "proxy"}, false},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := Add(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		a, err := f.Build(nil)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
		if tc.name == "keys, revocations, networks" && err == nil {
			tok, _ := access.Issue(priv, "k1", access.Claims{Stream: "s", Session: "s1", Expires: time.Now().Add(time.Hour)})
			if a.Tokens == nil || a.Rules == nil || a.TrustedProxies == nil || a.Revocations == nil {
				t.Fatalf("%s: %+v", tc.name, a)
			}
			if err := a.Tokens.Verify(tok, "s", a.TrustedProxies.Prefixes()[0].Addr()); !errors.Is(err, access.ErrRevoked) {
				t.Errorf("a token of a revoked session: %v, want revoked", err)
			}
		}
	}
}

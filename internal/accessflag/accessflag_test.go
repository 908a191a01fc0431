package accessflag

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

// keysAndRevocations writes a directory of one public key, k1, and a
// revocation file of ids, and returns their paths with the private key.
func keysAndRevocations(t *testing.T, ids string) (dir, revoked string, priv ed25519.PrivateKey) {
	t.Helper()
	dir = t.TempDir()
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
	revoked = filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(revoked, []byte(ids), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, revoked, priv
}

func TestBuild(t *testing.T) {
	dir, revoked, priv := keysAndRevocations(t, "s1\n")
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

// TestRevocationUnion: with -revoked and the directory's list, the
// sessions of both are revoked, each list replacing only its own part.
func TestRevocationUnion(t *testing.T) {
	dir, revoked, priv := keysAndRevocations(t, "file1\n")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := Add(fs)
	if err := fs.Parse([]string{"-token-keys", dir, "-revoked", revoked}); err != nil {
		t.Fatal(err)
	}
	a, err := f.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]bool) {
		t.Helper()
		for sid, isRevoked := range want {
			tok, err := access.Issue(priv, "k1", access.Claims{Stream: "s", Session: sid, Expires: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Tokens.Verify(tok, "s", netip.Addr{}); errors.Is(err, access.ErrRevoked) != isRevoked {
				t.Errorf("%s: session %s: %v, want revoked %v", when, sid, err, isRevoked)
			}
		}
	}
	check("the file alone", map[string]bool{"file1": true, "dir1": false})
	a.ChangeDirectoryRevocations(true, []string{"dir1", "dir2"}, nil)
	check("the file and the directory", map[string]bool{"file1": true, "dir1": true, "dir2": true, "other": false})
	// The file changes: the directory's sessions stay revoked.
	next := revoked + ".new"
	if err := os.WriteFile(next, []byte("file2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, revoked); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Revocations.Load(); !ok || err != nil {
		t.Fatalf("the new file not loaded: %v %v", ok, err)
	}
	check("a new file", map[string]bool{"file1": false, "file2": true, "dir1": true})
	a.ChangeDirectoryRevocations(false, []string{"dir3"}, []string{"dir1"})
	check("a change in the directory", map[string]bool{"file2": true, "dir1": false, "dir2": true, "dir3": true})
	a.ChangeDirectoryRevocations(true, nil, nil)
	check("the directory emptied", map[string]bool{"file2": true, "dir2": false, "dir3": false})

	var none Access // without -token-keys
	none.ChangeDirectoryRevocations(true, []string{"x"}, nil)
}

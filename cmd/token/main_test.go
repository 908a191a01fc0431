package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

// t0 is the clock of the commands under test.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// token runs the command with args at time at, and returns its exit code
// and outputs.
func token(t *testing.T, at time.Time, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr, func() time.Time { return at })
	return code, stdout.String(), stderr.String()
}

// TestRoundTrip makes two keys, issues tokens with each, and verifies
// them with the public keys, as a PoP holding both during a rotation
// would; then checks them with the access package itself.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, kid := range []string{"k1", "k2"} {
		if code, out, errOut := token(t, t0, "keygen", "-out", dir, "-kid", kid); code != 0 || !strings.Contains(out, kid+".pub") {
			t.Fatalf("keygen %s: %d %q %q", kid, code, out, errOut)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "k1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("k1.key mode %v, want 0600", fi.Mode().Perm())
	}
	if code, _, errOut := token(t, t0, "keygen", "-out", dir, "-kid", "k1"); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over an existing key: %d %q", code, errOut)
	}
	// The PoP's directory holds only the public keys.
	pubDir := t.TempDir()
	for _, kid := range []string{"k1", "k2"} {
		data, err := os.ReadFile(filepath.Join(dir, kid+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pubDir, kid+".pub"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	revoked := filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(revoked, []byte("gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	issue := func(args ...string) string {
		t.Helper()
		code, out, errOut := token(t, t0, append([]string{"issue"}, args...)...)
		if code != 0 {
			t.Fatalf("issue %v: %d %q", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	k1, k2 := filepath.Join(dir, "k1.key"), filepath.Join(dir, "k2.key")
	plain := issue("-key", k1, "-kid", "k1", "-stream", "demo")
	tests := []struct {
		name, token string
		at          time.Time
		args        []string
		code        int
		want        string // in stdout for 0, in stderr otherwise
	}{
		{"admitted", plain, t0, []string{"-stream", "demo"}, 0, "admitted"},
		{"second key, kid from the file name", issue("-key", k2, "-stream", "demo"), t0, []string{"-stream", "demo"}, 0, "kid\tk2"},
		{"wrong stream", plain, t0, []string{"-stream", "other"}, 1, "403 wrong-stream"},
		{"expired", plain, t0.Add(time.Hour), []string{"-stream", "demo"}, 1, "403 expired"},
		{"ttl", issue("-key", k1, "-stream", "demo", "-ttl", "3h"), t0.Add(2 * time.Hour), []string{"-stream", "demo"}, 0, "expires\t2026-01-01T03:00:00Z"},
		{"prefix", issue("-key", k1, "-stream", "cam-", "-prefix"), t0, []string{"-stream", "cam-2"}, 0, "streams\tcam-*"},
		{"network", issue("-key", k1, "-stream", "demo", "-cidr", "10.0.0.0/8"), t0, []string{"-stream", "demo", "-addr", "10.1.1.1"}, 0, "network\t10.0.0.0/8"},
		{"outside the network", issue("-key", k1, "-stream", "demo", "-cidr", "10.0.0.0/8"), t0, []string{"-stream", "demo", "-addr", "192.0.2.1"}, 1, "403 network"},
		{"revoked", issue("-key", k1, "-stream", "demo", "-sid", "gone"), t0, []string{"-stream", "demo", "-revoked", revoked}, 1, "403 revoked"},
		{"session kept", issue("-key", k1, "-stream", "demo", "-sid", "kept", "-max-addrs", "2"), t0, []string{"-stream", "demo", "-revoked", revoked}, 0, "max addresses\t2"},
		{"wrong kid", issue("-key", k1, "-kid", "k2", "-stream", "demo"), t0, []string{"-stream", "demo"}, 1, "403 invalid"},
		{"not a token", "hello", t0, []string{"-stream", "demo"}, 1, "403 invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"verify", "-keys", pubDir}, tt.args...), tt.token)
			code, out, errOut := token(t, tt.at, args...)
			got := out
			if code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Errorf("verify: %d\nstdout: %s\nstderr: %s\nwant %d and %q", code, out, errOut, tt.code, tt.want)
			}
		})
	}
	// The access package agrees.
	ks, err := access.LoadPublicKeys(pubDir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := access.New(access.Config{Keys: ks, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(plain, "demo", netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Error(err)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"nothing", nil, 2},
		{"unknown command", []string{"mint"}, 2},
		{"help", []string{"help"}, 0},
		{"keygen help", []string{"keygen", "-h"}, 0},
		{"keygen without kid", []string{"keygen", "-out", dir}, 2},
		{"keygen bad kid", []string{"keygen", "-out", dir, "-kid", "../k1"}, 1},
		{"keygen into a missing directory", []string{"keygen", "-out", filepath.Join(dir, "no", "such"), "-kid", "k1"}, 1},
		{"issue without key", []string{"issue", "-stream", "demo"}, 2},
		{"issue without stream", []string{"issue", "-key", "k1.key"}, 2},
		{"issue missing key file", []string{"issue", "-key", filepath.Join(dir, "k9.key"), "-stream", "demo"}, 1},
		{"issue unknown flag", []string{"issue", "-nope"}, 2},
		{"issue stray argument", []string{"issue", "-key", "k", "-stream", "demo", "extra"}, 2},
		{"verify without token", []string{"verify", "-keys", dir, "-stream", "demo"}, 2},
		{"verify without keys", []string{"verify", "-stream", "demo", "tok"}, 2},
		{"verify bad address", []string{"verify", "-keys", dir, "-stream", "demo", "-addr", "nope", "tok"}, 1},
		{"verify no keys in directory", []string{"verify", "-keys", dir, "-stream", "demo", "tok"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, out, errOut := token(t, t0, tt.args...); code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
		})
	}
	// A flag the key file cannot satisfy.
	if code, _, _ := token(t, t0, "keygen", "-out", dir, "-kid", "k1"); code != 0 {
		t.Fatal("keygen failed")
	}
	for _, args := range [][]string{
		{"-ttl", "0s"}, {"-cidr", "10.0.0.0/33"}, {"-cidr", "10.1.2.3/8"}, {"-max-addrs", "65"}, {"-stream", "a.b"},
	} {
		all := append([]string{"issue", "-key", filepath.Join(dir, "k1.key"), "-stream", "demo"}, args...)
		if code, _, errOut := token(t, t0, all...); code != 1 {
			t.Errorf("issue %v: exit %d, want 1; %s", args, code, errOut)
		}
	}
}

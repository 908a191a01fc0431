package access

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadPublicKeys(t *testing.T) {
	pub1, priv1 := testKey(1)
	pub2, _ := testKey(2)
	pem1, err := MarshalPublicKey(pub1, "")
	if err != nil {
		t.Fatal(err)
	}
	pem2, err := MarshalPublicKey(pub2, "")
	if err != nil {
		t.Fatal(err)
	}
	named1, _ := MarshalPublicKey(pub1, "k1")
	named2, _ := MarshalPublicKey(pub2, "k2")
	privPEM, err := MarshalPrivateKey(priv1)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})

	tests := []struct {
		name  string
		files map[string][]byte // under the directory
		paths []string          // relative to it; "." is the directory
		want  []string          // key ids, or nil for an error
	}{
		{"directory", map[string][]byte{"k1.pub": pem1, "k2.pem": pem2, "README": []byte("hi"), "k1.key": privPEM}, []string{"."}, []string{"k1", "k2"}},
		{"files", map[string][]byte{"k1.pub": pem1, "k2.pub": pem2}, []string{"k1.pub", "k2.pub"}, []string{"k1", "k2"}},
		{"one file of named keys", map[string][]byte{"keys.pem": append(named1, named2...)}, []string{"keys.pem"}, []string{"k1", "k2"}},
		{"kid header wins over the name", map[string][]byte{"old.pub": named2}, []string{"old.pub"}, []string{"k2"}},
		{"unnamed key among several", map[string][]byte{"keys.pem": append(named1, pem2...)}, []string{"keys.pem"}, nil},
		{"same kid twice", map[string][]byte{"k1.pub": pem1, "k1.pem": pem2}, []string{"."}, nil},
		{"private key", map[string][]byte{"k1.pem": privPEM}, []string{"."}, nil},
		{"not Ed25519", map[string][]byte{"k1.pub": ecPEM}, []string{"."}, nil},
		{"not PEM", map[string][]byte{"k1.pub": []byte("ssh-ed25519 AAAA")}, []string{"."}, nil},
		{"bad kid", map[string][]byte{".k1.pub": pem1}, []string{".k1.pub"}, nil},
		{"empty directory", map[string][]byte{"README": []byte("hi")}, []string{"."}, nil},
		{"missing", nil, []string{"nope.pub"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var paths []string
			for _, p := range tt.paths {
				paths = append(paths, filepath.Join(dir, p))
			}
			ks, err := LoadPublicKeys(paths...)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("keys %v, want an error", slices.Sorted(maps.Keys(ks)))
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(ks)); !slices.Equal(got, tt.want) {
				t.Errorf("key ids %v, want %v", got, tt.want)
			}
			if ks["k1"] != nil && !ks["k1"].Equal(pub1) || ks["k2"] != nil && !ks["k2"].Equal(pub2) {
				t.Error("a key id names another key")
			}
		})
	}
}

func TestLoadPrivateKey(t *testing.T) {
	pub, priv := testKey(1)
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := MarshalPublicKey(pub, "")
	dir := t.TempDir()
	for name, data := range map[string][]byte{"k1.key": privPEM, "k1.pub": pubPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadPrivateKey(filepath.Join(dir, "k1.key"))
	if err != nil || !got.Equal(priv) {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	for _, bad := range []string{"k1.pub", "missing.key"} {
		if _, err := LoadPrivateKey(filepath.Join(dir, bad)); err == nil {
			t.Errorf("LoadPrivateKey(%s): no error", bad)
		}
	}
}

func TestValidKeyID(t *testing.T) {
	for kid, want := range map[string]bool{
		"k1": true, "2026-01.a_b": true, "": false, ".k1": false, "../k1": false, "k 1": false, "k/1": false,
		strings.Repeat("k", 64): true, strings.Repeat("k", 65): false,
	} {
		if got := ValidKeyID(kid); got != want {
			t.Errorf("ValidKeyID(%q) = %v, want %v", kid, got, want)
		}
	}
}

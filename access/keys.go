package access

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// KeySet holds the public keys tokens may be signed with, by key id.
// Several keys let a new one be rolled out before the old one is dropped.
// It is a plain map, not safe for concurrent writes; New and SetKeys keep
// a copy of it.
type KeySet map[string]ed25519.PublicKey

// kidHeader is the PEM header that names a key's id in a file of several
// keys: "kid: k1".
const kidHeader = "kid"

// ValidKeyID reports whether kid can name a key: 1 to 64 bytes of
// [A-Za-z0-9._-], not starting with a dot, so that it is also a file name.
func ValidKeyID(kid string) bool {
	if len(kid) == 0 || len(kid) > 64 || kid[0] == '.' {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// clone returns a copy of ks that shares nothing with it.
func (ks KeySet) clone() KeySet {
	c := make(KeySet, len(ks))
	for kid, k := range ks {
		c[kid] = slices.Clone(k)
	}
	return c
}

// validate reports what makes ks unusable by a Verifier.
func (ks KeySet) validate() error {
	if len(ks) == 0 {
		return errors.New("no public keys")
	}
	for kid, k := range ks {
		if !ValidKeyID(kid) {
			return fmt.Errorf("key id %q: want [A-Za-z0-9._-]{1,64}", kid)
		}
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("key %s: %d bytes, want %d", kid, len(k), ed25519.PublicKeySize)
		}
	}
	return nil
}

// LoadPublicKeys reads the public keys at paths, each a file or a
// directory. A directory gives its files named *.pub or *.pem (other
// files are ignored). A file holds PEM blocks "PUBLIC KEY" (PKIX, as
// cmd/token keygen writes them): a block's key id is its "kid" header,
// or for a file of one block without one, the file's name without its
// extension (k1.pub is key k1). So a PoP's flag can point at a
// directory of KID.pub files, where rotating keys is adding one file and
// later removing another, or at one file of all the keys, each block
// with its kid header. A private key, a key of another type or a key id
// found twice is an error: a PoP must hold no private key.
func LoadPublicKeys(paths ...string) (KeySet, error) {
	ks := KeySet{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			files = files[:0]
			for _, e := range entries {
				if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".pub" || ext == ".pem") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if err := ks.add(data, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("no public keys in %s", strings.Join(paths, ", "))
	}
	return ks, nil
}

// add adds the keys of the PEM data of a file named name (without
// extension).
func (ks KeySet) add(data []byte, name string) error {
	var blocks []*pem.Block
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return errors.New("no PEM block")
	}
	for _, b := range blocks {
		if b.Type != "PUBLIC KEY" {
			return fmt.Errorf("a PEM block %q: want only PUBLIC KEY", b.Type)
		}
		kid, ok := b.Headers[kidHeader]
		if !ok && len(blocks) > 1 {
			return fmt.Errorf("a key without a %q header among %d", kidHeader, len(blocks))
		}
		if !ok {
			kid = name
		}
		if !ValidKeyID(kid) {
			return fmt.Errorf("key id %q: want [A-Za-z0-9._-]{1,64}", kid)
		}
		if _, dup := ks[kid]; dup {
			return fmt.Errorf("key id %q twice", kid)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return fmt.Errorf("key %s: %w", kid, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("key %s: a %T, want Ed25519", kid, k)
		}
		ks[kid] = pub
	}
	return nil
}

// MarshalPublicKey returns k as a PEM block "PUBLIC KEY" (PKIX), with a
// kid header when kid is not empty.
func MarshalPublicKey(k ed25519.PublicKey, kid string) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if kid != "" {
		b.Headers = map[string]string{kidHeader: kid}
	}
	return pem.EncodeToMemory(b), nil
}

// MarshalPrivateKey returns k as a PEM block "PRIVATE KEY" (PKCS #8).
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadPrivateKey reads an Ed25519 private key from a PEM file "PRIVATE
// KEY" (PKCS #8, as cmd/token keygen and `openssl genpkey -algorithm
// ed25519` write them).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: want a PEM block PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, want Ed25519", path, k)
	}
	return priv, nil
}

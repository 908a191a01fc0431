package access

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Issue returns a token carrying c, signed with key, whose public key
// Verifiers hold as kid. The header is {"alg":"EdDSA","kid":KID}: the
// optional "typ" is left out to keep tokens short (RFC 7519 5.1).
func Issue(key ed25519.PrivateKey, kid string, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("issue: not an Ed25519 private key")
	}
	if !ValidKeyID(kid) {
		return "", fmt.Errorf("issue: key id %q: want [A-Za-z0-9._-]{1,64}", kid)
	}
	if err := c.validate(); err != nil {
		return "", fmt.Errorf("issue: %w", err)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c.wire())
	delete(t.Header, "typ")
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("issue: %w", err)
	}
	return s, nil
}

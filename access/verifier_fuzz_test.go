package access

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzVerify feeds tokens to a Verifier: it never panics, each refusal
// has a reason, Verify and Parse agree on what is invalid, and whatever
// it admits carries an EdDSA signature that one of the configured keys
// verifies, checked here without the JWT library.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, Config{CacheEntries: 64})
	for _, tt := range verifyCases(f, fx) {
		f.Add(tt.token, tt.stream, tt.addr)
	}
	f.Fuzz(func(t *testing.T, token, stream, addrText string) {
		addr, _ := netip.ParseAddr(addrText)
		err := fx.v.Verify(token, stream, addr)
		if err != nil && Reason(err) == "" {
			t.Fatalf("refused without a reason: %v", err)
		}
		if again := fx.v.Verify(token, stream, addr); errors.Is(again, ErrInvalid) != errors.Is(err, ErrInvalid) {
			t.Fatalf("first %v, then %v", err, again)
		}
		_, _, perr := fx.v.Parse(token)
		if token != "" && (perr != nil) != errors.Is(err, ErrInvalid) {
			t.Fatalf("Verify: %v; Parse: %v", err, perr)
		}
		if perr == nil && !signedByKey(fx.keys, token) {
			t.Fatalf("accepted, but not signed by a configured key: %q", token)
		}
	})
}

// signedByKey reports whether token is a JWS compact serialization with
// alg EdDSA whose signature the key its kid names verifies.
func signedByKey(keys KeySet, token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	enc := base64.RawURLEncoding.Strict()
	hdr, err1 := enc.DecodeString(parts[0])
	sig, err2 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return false
	}
	var h struct{ Alg, Kid string }
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "EdDSA" {
		return false
	}
	k, ok := keys[h.Kid]
	return ok && ed25519.Verify(k, []byte(parts[0]+"."+parts[1]), sig)
}

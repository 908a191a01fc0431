package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A QoE session token is what a page gets from POST /api/qoe/session and
// sends with every beacon: proof that the server started the session, for
// this stream, not long ago. It is 40 bytes, base64url without padding
// (RFC 4648 §5), 54 characters:
//
//	id     16 bytes  random, the session: one user in the figures
//	issued  8 bytes  big-endian Unix seconds of the (re)issue
//	mac    16 bytes  HMAC-SHA256(key, tokenDomain || id || issued || stream), truncated
//
// Nothing is kept per token issued: the server recognises its own tokens by
// the MAC, so issuing costs no memory.
const (
	sessionIDBytes  = 16
	sessionMACBytes = 16
	tokenBytes      = sessionIDBytes + 8 + sessionMACBytes
	tokenChars      = (tokenBytes*8 + 5) / 6 // 54
	// tokenDomain separates these MACs from any other use of the key.
	tokenDomain = "golivestream qoe session v1\x00"
	// tokenSkew is how far in the future an issue time may be: room for the
	// clocks of nodes that share a key.
	tokenSkew = time.Minute
)

// tokenEncoding is strict: one token has one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// Why a session token is refused. Each is also a metric reason.
var (
	errSessionMissing = errors.New("no session")
	errSessionForged  = errors.New("session not issued by this server for this stream")
	errSessionExpired = errors.New("session expired")
)

// sessionID identifies one playback session.
type sessionID [sessionIDBytes]byte

// sessionToken is a decoded token, its MAC not yet checked.
type sessionToken struct {
	id     sessionID
	issued int64 // Unix seconds
	mac    [sessionMACBytes]byte
}

// parseToken decodes a token's text; it checks the form, not the MAC.
// The error wraps errSessionMissing or errSessionForged.
func parseToken(s string) (sessionToken, error) {
	var t sessionToken
	if s == "" {
		return t, errSessionMissing
	}
	if len(s) != tokenChars {
		return t, fmt.Errorf("%w: %d characters, want %d", errSessionForged, len(s), tokenChars)
	}
	var raw [tokenBytes]byte
	n, err := tokenEncoding.Decode(raw[:], []byte(s))
	if err != nil || n != tokenBytes {
		return t, fmt.Errorf("%w: not base64url", errSessionForged)
	}
	copy(t.id[:], raw[:sessionIDBytes])
	t.issued = int64(binary.BigEndian.Uint64(raw[sessionIDBytes:]))
	copy(t.mac[:], raw[sessionIDBytes+8:])
	return t, nil
}

// String encodes t.
func (t sessionToken) String() string {
	var raw [tokenBytes]byte
	copy(raw[:], t.id[:])
	binary.BigEndian.PutUint64(raw[sessionIDBytes:], uint64(t.issued))
	copy(raw[sessionIDBytes+8:], t.mac[:])
	return tokenEncoding.EncodeToString(raw[:])
}

// sessionSigner issues and checks tokens. It is immutable, so safe for
// concurrent use.
type sessionSigner struct {
	key []byte
	ttl time.Duration
}

// newSessionKey returns a key for a process that was given none.
func newSessionKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	return key
}

// mac computes the MAC of id and issued for stream.
func (g *sessionSigner) mac(id sessionID, issued int64, stream string) [sessionMACBytes]byte {
	h := hmac.New(sha256.New, g.key)
	h.Write([]byte(tokenDomain))
	h.Write(id[:])
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(issued)))
	h.Write([]byte(stream))
	var out [sessionMACBytes]byte
	copy(out[:], h.Sum(nil))
	return out
}

// issue returns a token for session id of stream, issued at now.
func (g *sessionSigner) issue(id sessionID, stream string, now time.Time) sessionToken {
	t := sessionToken{id: id, issued: now.Unix()}
	t.mac = g.mac(id, t.issued, stream)
	return t
}

// newSession returns a token for a new session of stream.
func (g *sessionSigner) newSession(stream string, now time.Time) sessionToken {
	var id sessionID
	rand.Read(id[:]) // never fails (crypto/rand, Go 1.24+)
	return g.issue(id, stream, now)
}

// verify checks that s is a token this server issued for stream, within
// its lifetime at now, and returns it. The error wraps errSessionMissing,
// errSessionForged or errSessionExpired.
func (g *sessionSigner) verify(s, stream string, now time.Time) (sessionToken, error) {
	t, err := parseToken(s)
	if err != nil {
		return t, err
	}
	want := g.mac(t.id, t.issued, stream)
	if !hmac.Equal(want[:], t.mac[:]) {
		return t, fmt.Errorf("%w: bad signature", errSessionForged)
	}
	// In whole seconds, as issued. The MAC is good, so issued is a time
	// this server (or a node with the same key) wrote: no overflow here.
	age := now.Unix() - t.issued
	switch {
	case age > int64(g.ttl/time.Second):
		return t, fmt.Errorf("%w: issued %d s ago", errSessionExpired, age)
	case age < -int64(tokenSkew/time.Second):
		return t, fmt.Errorf("%w: issued %d s in the future", errSessionExpired, -age)
	}
	return t, nil
}

// sessionReason is the metric reason of a refused session token.
func sessionReason(err error) string {
	switch {
	case errors.Is(err, errSessionMissing):
		return "session_missing"
	case errors.Is(err, errSessionExpired):
		return "session_expired"
	default:
		return "session_forged"
	}
}

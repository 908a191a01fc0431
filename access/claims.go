package access

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/golivestream/live/internal/layout"
)

// MaxAddrsCap is the largest MaxAddrs a token may carry: it bounds the
// addresses a Verifier remembers per token.
const MaxAddrsCap = 64

// maxSession bounds a session id, in bytes.
const maxSession = 128

// Claims are what a token says. The zero value of each optional field
// leaves its claim out.
type Claims struct {
	// Stream is the stream the token admits ("sub"), or with Prefix the
	// start of the names of the streams it admits. Required: a stream
	// name, [A-Za-z0-9_-]{1,64}, or with Prefix the start of one.
	Stream string
	// Prefix makes Stream a prefix ("pfx"): "cam-" admits cam-1, cam-2.
	Prefix bool
	// Network is the client network the token is bound to ("cidr"). The
	// zero Prefix means any address.
	Network netip.Prefix
	// Session names the viewing session ("sid"), up to 128 bytes: a
	// token with one can be revoked (RevocationSet). Empty means none.
	Session string
	// MaxAddrs limits the client addresses (IPv6: /64s) that may use the
	// token at once ("addrs"), 0 to MaxAddrsCap. Zero means no limit.
	MaxAddrs int
	// Expires is when the token stops admitting ("exp"). Required.
	Expires time.Time
	// NotBefore is when it starts ("nbf"). Zero means at once.
	NotBefore time.Time
	// IssuedAt is when it was made ("iat"), for information. Zero means
	// not said.
	IssuedAt time.Time
}

// Admits reports whether c admits stream.
func (c *Claims) Admits(stream string) bool {
	if c.Prefix {
		return strings.HasPrefix(stream, c.Stream)
	}
	return stream == c.Stream
}

// validate reports what makes c unusable.
func (c *Claims) validate() error {
	switch {
	case c.Prefix && !layout.ValidStream(c.Stream):
		// A prefix of a valid name is itself a valid name.
		return fmt.Errorf("stream prefix %q: want [A-Za-z0-9_-]{1,64}", c.Stream)
	case !c.Prefix && !layout.ValidStream(c.Stream):
		return fmt.Errorf("stream %q: want [A-Za-z0-9_-]{1,64}", c.Stream)
	case c.Expires.IsZero():
		return errors.New("no expiry")
	case c.MaxAddrs < 0 || c.MaxAddrs > MaxAddrsCap:
		return fmt.Errorf("max addresses %d: want 0 to %d", c.MaxAddrs, MaxAddrsCap)
	case len(c.Session) > maxSession:
		return fmt.Errorf("session id of %d bytes: want at most %d", len(c.Session), maxSession)
	case c.Network.IsValid() && c.Network != normalPrefix(c.Network):
		return fmt.Errorf("network %s: want %s", c.Network, normalPrefix(c.Network))
	}
	return nil
}

// wireClaims is the JSON of Claims in a token.
type wireClaims struct {
	jwt.RegisteredClaims
	Prefix   bool   `json:"pfx,omitempty"`
	Network  string `json:"cidr,omitempty"`
	Session  string `json:"sid,omitempty"`
	MaxAddrs int    `json:"addrs,omitempty"`
}

// wire returns c as it goes into a token.
func (c *Claims) wire() *wireClaims {
	w := &wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: c.Stream, ExpiresAt: jwt.NewNumericDate(c.Expires)},
		Prefix:           c.Prefix,
		Session:          c.Session,
		MaxAddrs:         c.MaxAddrs,
	}
	if c.Network.IsValid() {
		w.Network = c.Network.String()
	}
	if !c.NotBefore.IsZero() {
		w.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	if !c.IssuedAt.IsZero() {
		w.IssuedAt = jwt.NewNumericDate(c.IssuedAt)
	}
	return w
}

// claims returns the Claims w carries, or what makes them unusable.
func (w *wireClaims) claims() (Claims, error) {
	c := Claims{Stream: w.Subject, Prefix: w.Prefix, Session: w.Session, MaxAddrs: w.MaxAddrs}
	if w.ExpiresAt != nil {
		c.Expires = w.ExpiresAt.Time
	}
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.Time
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Time
	}
	if w.Network != "" {
		p, err := netip.ParsePrefix(w.Network)
		if err != nil {
			return Claims{}, fmt.Errorf("cidr: %w", err)
		}
		// Signed by the issuer: accepted as the issuer meant it, the
		// host bits dropped and an IPv4-mapped network taken as IPv4.
		c.Network = normalPrefix(p)
	}
	return c, c.validate()
}

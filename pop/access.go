package pop

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/internal/layout"
)

// Who may watch (issue #23) is checked here, at the edge, on every
// request, without calling home: a stream's origin says on its responses
// whether the stream needs a playback token (AccessHeader) and which
// client networks it allows or denies (AllowHeader, DenyHeader); the node
// learns that per stream and checks tokens with the public keys it holds
// (access.Verifier). A token travels in the path, /t/{token}/live/...,
// so that the relative URIs of playlists and MPDs carry it; it is
// stripped before the cache key, so that every viewer shares one cached
// copy. A denied request is answered 401 or 403 and never counted as a
// viewer; once the node knows the stream's rules it is not fetched
// either. The first request for a stream the node has not seen is
// fetched (within the client's miss budget, like any object not known
// to exist) to learn them, then denied.

// The headers of a stream's rules (internal/layout), and of a denial.
const (
	AccessHeader = layout.AccessHeader
	AllowHeader  = layout.AllowHeader
	DenyHeader   = layout.DenyHeader
	// DeniedHeader says why a request was denied (403): access.Reason.
	DeniedHeader = "X-Access-Denied"
)

// policy is a stream's access rules as its origin said them.
type policy struct {
	private bool
	rules   *access.Rules // nil: everyone
	raw     [3]string     // the headers it was read from, to tell a change
	at      atomic.Int64  // when last said, Unix nanoseconds
}

// policies are the rules of the streams this node has seen responses of.
// Bounded by maxKnown streams; a stream not seen for two knownFor is
// forgotten. Safe for concurrent use.
type policies struct {
	m sync.Map // stream name -> *policy
	n atomic.Int64
}

// get returns the policy of stream, or nil when none is known.
func (ps *policies) get(stream string) *policy {
	if v, ok := ps.m.Load(stream); ok {
		return v.(*policy)
	}
	return nil
}

// learn records what the headers h of a response of stream say, now.
func (ps *policies) learn(stream string, h http.Header, now time.Time) *policy {
	raw := [3]string{first(h[AccessHeader]), first(h[AllowHeader]), first(h[DenyHeader])}
	if p := ps.get(stream); p != nil && p.raw == raw {
		p.at.Store(now.UnixNano())
		return p
	}
	p := &policy{private: raw[0] == "token", raw: raw}
	if raw[1] != "" || raw[2] != "" {
		if rules, err := access.ParseRules(raw[1], raw[2]); err == nil {
			p.rules = rules
		} else {
			// Rules we cannot read allow nobody: failing open would let
			// in whom the origin meant to keep out.
			p.rules, _ = access.ParseRules("", "0.0.0.0/0, ::/0")
		}
	}
	p.at.Store(now.UnixNano())
	if _, loaded := ps.m.Swap(stream, p); !loaded {
		if ps.n.Add(1) > maxKnown {
			ps.sweep(now)
		}
	}
	return p
}

// sweep forgets the streams not heard of for two knownFor.
func (ps *policies) sweep(now time.Time) {
	old := now.Add(-2 * knownFor).UnixNano()
	ps.m.Range(func(k, v any) bool {
		if v.(*policy).at.Load() < old {
			ps.m.Delete(k)
			ps.n.Add(-1)
		}
		return true
	})
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// accessCheck is a request's side of the access rules: its client's
// address and token.
type accessCheck struct {
	addr     netip.Addr
	token    string
	hasToken bool
}

// withToken splits a path of the token form, /t/{token}/..., into the
// token to check and the object's path; other paths are returned as
// they are, with no token. ok is false for a malformed token form.
func withToken(path string) (c accessCheck, rest string, ok bool) {
	if !strings.HasPrefix(path, layout.TokenPrefix) {
		return c, path, true
	}
	token, rest, ok := layout.SplitToken(path)
	if !ok {
		return c, "", false
	}
	c.token, c.hasToken = token, true
	return c, rest, true
}

// errNoVerifier denies a token for a private stream at a node given no
// keys to check it with.
var errNoVerifier = errors.New("this node has no keys to check tokens")

// admitted checks the global rules and, when pol is known, the stream's:
// nil, or why the request is denied.
func (s *Server) admitted(c accessCheck, stream string, pol *policy) error {
	if err := s.cfg.Rules.Check(c.addr); err != nil {
		return err
	}
	if pol == nil {
		return nil
	}
	if err := pol.rules.Check(c.addr); err != nil {
		return err
	}
	if !pol.private {
		return nil
	}
	if !c.hasToken {
		return access.ErrNoToken
	}
	if s.cfg.Tokens == nil {
		return errNoVerifier
	}
	if s.invalid != nil && !s.invalid.peek(c.addr) {
		return errTooManyInvalid
	}
	err := s.cfg.Tokens.Verify(c.token, stream, c.addr)
	if errors.Is(err, access.ErrInvalid) && s.invalid != nil {
		s.invalid.takeAddr(c.addr, time.Now())
	}
	return err
}

// invalidTokenRate and invalidTokenBurst bound, per client address, the
// invalid tokens checked: each costs a signature check (about 70 µs), and
// a valid token is checked once, then remembered.
const (
	invalidTokenRate  = 2
	invalidTokenBurst = 10
)

// errTooManyInvalid refuses a client that sent too many invalid tokens:
// each costs a signature check.
var errTooManyInvalid = errors.New("too many invalid tokens from this client")

// deny answers a request refused by the access rules.
func (s *Server) deny(w http.ResponseWriter, err error) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	reason := access.Reason(err)
	switch {
	case errors.Is(err, errTooManyInvalid):
		reason = "too-many-invalid"
		s.metrics.denied[reason].Inc()
		h.Set("Retry-After", "10")
		http.Error(w, "too many invalid tokens", http.StatusTooManyRequests)
		return
	case errors.Is(err, errNoVerifier):
		reason = access.Reason(access.ErrInvalid)
	}
	s.metrics.denied[reason].Inc()
	if access.Status(err) == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="live"`)
		http.Error(w, "a playback token is required", http.StatusUnauthorized)
		return
	}
	h.Set(DeniedHeader, reason)
	http.Error(w, "access denied: "+reason, http.StatusForbidden)
}

// deniedReasons are the labels of live_pop_access_denied_total.
func deniedReasons() []string { return append(access.Reasons(), "too-many-invalid") }

// tokenRedirect answers an entry manifest asked for with ?token= by a
// redirect into the path form, /t/{token}/live/..., which the manifest's
// relative URIs inherit. It reports false when r has no such query.
func tokenRedirect(w http.ResponseWriter, r *http.Request, path string, k layout.Kind) bool {
	if !k.IsEntry() || !strings.Contains(r.URL.RawQuery, "token=") {
		return false
	}
	token := r.URL.Query().Get("token")
	if _, _, ok := layout.SplitToken(layout.TokenPrefix + token + path); !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "malformed token", http.StatusBadRequest)
		return true
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, layout.TokenPrefix+token+path, http.StatusFound)
	return true
}

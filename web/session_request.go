package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
)

// sessionRequest is the body of POST /api/qoe/session: the stream the page
// plays, and the token it renews, if any.
type sessionRequest struct {
	Stream  string `json:"stream"`
	Session string `json:"session,omitempty"`
}

// sessionResponse answers a sessionRequest.
type sessionResponse struct {
	// Session is the token to send with every beacon.
	Session string `json:"session"`
	// ExpiresIn is the token's lifetime in seconds; pages renew it at half.
	ExpiresIn float64 `json:"expires_in"`
}

// errSessionRequest marks a session request refused for its content.
var errSessionRequest = errors.New("invalid session request")

// maxSessionRequestBytes bounds a session request's body.
const maxSessionRequestBytes = 256

// parseSessionRequest decodes and validates a session request body.
func parseSessionRequest(body []byte) (*sessionRequest, error) {
	var req sessionRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, fmt.Errorf("%w: %v", errSessionRequest, err)
	}
	if err := checkStreamSession(req.Stream, req.Session); err != nil {
		return nil, fmt.Errorf("%w: %v", errSessionRequest, err)
	}
	return &req, nil
}

// serveSession handles POST /api/qoe/session. Without a session in the
// body it starts one for a live stream, within the client's quota of new
// sessions; with one, it renews that session's token (same session, new
// issue time), which costs no quota: a page renews as long as it plays.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	now := time.Now()
	addr := clientAddr(r)
	if !s.limit.allow(addr, now) {
		s.refuseSession(w, "rate", http.StatusTooManyRequests, "too many requests")
		return
	}
	body, err := readLimited(w, r, maxSessionRequestBytes)
	if err != nil {
		s.refuseSession(w, "size", http.StatusRequestEntityTooLarge, "request too large")
		return
	}
	req, err := parseSessionRequest(body)
	if err != nil {
		s.refuseSession(w, "invalid", http.StatusBadRequest, err.Error())
		return
	}
	var renewed *sessionToken
	if req.Session != "" {
		old, err := s.signer.verify(req.Session, req.Stream, now)
		if err != nil {
			s.refuseSession(w, sessionReason(err), http.StatusForbidden, err.Error())
			return
		}
		renewed = &old
	}
	if !s.live(r.Context(), req.Stream) {
		s.refuseSession(w, "stream", http.StatusNotFound, "no such live stream")
		return
	}
	var tok sessionToken
	if renewed != nil {
		tok = s.signer.issue(renewed.id, req.Stream, now)
		s.metrics.sessions.WithLabelValues("renewal").Inc()
	} else {
		if !s.issue.allow(issueKey(addr), now) {
			s.refuseSession(w, "issue_rate", http.StatusTooManyRequests, "too many new sessions from this address")
			return
		}
		tok = s.signer.newSession(req.Stream, now)
		s.metrics.sessions.WithLabelValues("new").Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sessionResponse{Session: tok.String(), ExpiresIn: s.signer.ttl.Seconds()})
}

// refuseSession answers a session request that gets no token.
func (s *Server) refuseSession(w http.ResponseWriter, reason string, code int, msg string) {
	s.metrics.sessionRejected.WithLabelValues(reason).Inc()
	s.drops.note("session request", reason, msg, time.Now())
	http.Error(w, msg, code)
}

// issueKey is what the quota of new sessions is counted against: the
// client's IPv4 address, or its IPv6 /64, the usual allocation to one
// subscriber (RFC 6177 §2), whose every address would otherwise be
// another quota.
func issueKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

package pop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/internal/layout"
)

// Key requests of encrypted streams (issue #25): a ClearKey license
// request, /live/{stream}/license or /live/{stream}/keys/{kid} (POST), or
// an HLS key URI, /live/{stream}/keys/{kid} (GET). The keys are the
// origin's (origin: protect_keys.go); a node checks the viewer as for any
// object of the stream (its token, its network), bounds the key requests
// of each client address, and passes the request on to the stream's
// origin, never cached, never coalesced, never forwarded to a peer: a key
// is answered to one viewer, with Cache-Control: private, no-store,
// whatever the origin says. Nothing of it is kept.

// Key request defaults (Config.KeyRate, KeyBurst): a player asks for a
// license when it starts, once per media type, and at each key change.
const (
	defaultKeyRate  = 1
	defaultKeyBurst = 10
)

// maxKeyBody bounds a license request body (a W3C ClearKey request lists
// a few KIDs in a few hundred bytes) and a key answer.
const maxKeyBody = 16 << 10

// keyAnswer is the Cache-Control of every key answer.
var keyAnswer = []string{"private, no-store"}

// isKeyPath reports, cheaply, whether path may be a key request's: most
// requests are not, and must not pay for a parse.
func isKeyPath(path string) bool {
	return strings.HasSuffix(path, "/"+layout.LicenseFile) || strings.Contains(path, "/"+layout.KeysDir+"/")
}

// serveKey answers a request for a key path (isKeyPath).
func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Cache-Control"] = keyAnswer
	path := r.URL.Path
	if r.URL.RawPath != "" {
		s.refuse(w, refuseLayout)
		return
	}
	c, path, ok := withToken(path)
	if !ok {
		s.refuse(w, refuseLayout)
		return
	}
	o, ok := layout.Parse(path)
	if !ok || !o.Kind.IsKey() || len(path)+len(r.URL.RawQuery) > layout.MaxURI {
		s.refuse(w, refuseLayout)
		return
	}
	allow := "POST, OPTIONS"
	if o.Kind == layout.Key {
		allow = "GET, HEAD, POST, OPTIONS"
	}
	switch {
	case r.Method == http.MethodOptions:
		// A CORS preflight (a license request with a JSON body is not a
		// simple request): no credentials, nothing to check.
		h.Set("Access-Control-Allow-Methods", allow)
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	case r.Method == http.MethodPost, o.Kind == layout.Key && (r.Method == http.MethodGet || r.Method == http.MethodHead):
	default:
		h.Set("Allow", allow)
		s.keyResult("method")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c.addr = access.RequestAddr(r, s.cfg.TrustedProxies)
	pol := s.policies.get(o.Stream)
	if err := s.admitted(c, o.Stream, pol); err != nil {
		s.keyResult("denied")
		s.deny(w, err) // no-store too
		return
	}
	if !s.keys.takeAddr(c.addr, time.Now()) {
		s.keyResult("limited")
		h.Set("Retry-After", "1")
		http.Error(w, "too many key requests", http.StatusTooManyRequests)
		return
	}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxKeyBody)); err != nil {
			s.keyResult("bad_request")
			http.Error(w, "request too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
	}
	resp, answer, err := s.fetchKey(r.Context(), r.Method, path, r.Header.Get("Content-Type"), body)
	if err != nil {
		if r.Context().Err() != nil {
			s.metrics.clientGone.Inc()
			return
		}
		s.keyResult("error")
		s.log.Warn("key request failed upstream", "stream", o.Stream, "error", err)
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	learned := s.policies.learn(o.Stream, resp.Header, time.Now())
	if pol == nil {
		// The stream's rules were not known before this answer.
		if err := s.admitted(c, o.Stream, learned); err != nil {
			s.keyResult("denied")
			s.deny(w, err)
			return
		}
	}
	for _, k := range []string{"Content-Type", "X-Content-Type-Options", "Allow"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if resp.StatusCode == http.StatusOK {
		s.keyResult("ok")
	} else {
		s.keyResult("refused")
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = w.Write(answer) // a client gone is no one else's problem
	}
}

// keyResult counts a key request in live_pop_key_requests_total.
func (s *Server) keyResult(result string) { s.metrics.keyRequests.WithLabelValues(result).Inc() }

// fetchKey passes a key request on to the origins of its stream (the
// fleet's, else the node's), in turn on a connection error or a 5xx, and
// returns the answer, its body read whole.
func (s *Server) fetchKey(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	targets, ok := s.fleetTargets(path)
	if !ok {
		for _, t := range s.origins.order() {
			targets = append(targets, t.base.String())
		}
	}
	var lastErr error
	for _, base := range targets {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			lastErr = err
			continue
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBody+1))
		resp.Body.Close()
		switch {
		case err != nil:
			lastErr = err
			continue
		case len(answer) > maxKeyBody:
			return nil, nil, errors.New("key answer too large")
		case resp.StatusCode >= 500:
			lastErr = fmt.Errorf("%s: %s", base, resp.Status)
			continue
		}
		return resp, answer, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no origin")
	}
	return nil, nil, lastErr
}

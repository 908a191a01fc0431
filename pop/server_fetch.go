package pop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// endToEnd are the response headers a cache replays (RFC 9110 7.6.1:
// hop-by-hop ones are not; CORS headers are the PoP's own).
var endToEnd = []string{
	"Content-Type", "Content-Length", "Cache-Control", "Etag", "Last-Modified", "Expires", "Content-Encoding",
	AccessHeader, AllowHeader, DenyHeader, // a peer learns the stream's rules from them too
}

// fetchOrigin starts fetching key from the origins, under ctx.
func (s *Server) fetchOrigin(ctx context.Context, key string, cl class) (*object, io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	if targets, ok := s.fleetTargets(key); ok {
		return s.fetchFromFleet(ctx, cancel, key, cl, targets)
	}
	resp, err := s.origins.get(ctx, key, nil)
	if err != nil {
		canceled := errors.Is(ctx.Err(), context.Canceled) // nobody wants it: no upstream error
		cancel()
		if !canceled {
			s.metrics.upstreamErrors.WithLabelValues("origin").Inc()
		}
		return nil, nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	s.metrics.fetches.WithLabelValues(cl.String(), "origin").Inc()
	if c := s.stats.counters(key); c != nil {
		c.originFetches.Add(1)
	}
	return s.newObject(key, cl, resp, cancel), cancelOnClose{resp.Body, cancel}, nil
}

// fetchFromFleet starts fetching key from the origins of its stream
// (fleet.go), under ctx, which cancel ends.
func (s *Server) fetchFromFleet(ctx context.Context, cancel context.CancelFunc, key string, cl class, targets []string) (*object, io.ReadCloser, error) {
	resp, i, reqCancel, err := s.fetchFleet(ctx, key, targets)
	if err != nil {
		canceled := errors.Is(ctx.Err(), context.Canceled)
		cancel()
		if !canceled {
			s.metrics.upstreamErrors.WithLabelValues("origin").Inc()
		}
		return nil, nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	s.metrics.fetches.WithLabelValues(cl.String(), "origin").Inc()
	if c := s.stats.counters(key); c != nil {
		c.originFetches.Add(1)
	}
	body := &resumable{s: s, ctx: ctx, key: key, body: resp.Body, cancel: reqCancel, next: targets[i+1:], length: resp.ContentLength, etag: resp.Header.Get("Etag")}
	if resp.StatusCode != http.StatusOK {
		body.next = nil // only a 200's bytes are the same everywhere
	}
	return s.newObject(key, cl, resp, cancel), cancelOnClose{body, cancel}, nil
}

// fetchPeer starts fetching key from the node that owns it, under ctx; if
// the owner cannot answer, from the origins directly.
func (s *Server) fetchPeer(parent context.Context, owner, key string, cl class) (*object, io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.FetchTimeout)
	resp, err := doGet(ctx, s.client, owner+key, http.Header{HopHeader: {s.self}})
	if err == nil && resp.StatusCode < 500 {
		s.metrics.fetches.WithLabelValues(cl.String(), "peer").Inc()
		return s.newObject(key, cl, resp, cancel), cancelOnClose{resp.Body, cancel}, nil
	}
	if err == nil {
		resp.Body.Close()
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	if parent.Err() != nil { // nobody wants it any more
		return nil, nil, fmt.Errorf("fetch %s from %s: %w", key, owner, err)
	}
	s.metrics.upstreamErrors.WithLabelValues("peer").Inc()
	s.log.Warn("peer failed; filling from the origin", "peer", owner, "key", key, "error", err)
	return s.fetchOrigin(parent, key, cl)
}

// newObject wraps an upstream response whose body is about to be copied.
func (s *Server) newObject(key string, cl class, resp *http.Response, cancel context.CancelFunc) *object {
	now := time.Now()
	fr := parseFreshness(cl, resp.Header, resp.StatusCode, s.cfg.MinTTL, s.cfg.NegativeTTL)
	n := 0
	for _, k := range endToEnd {
		if _, ok := resp.Header[k]; ok {
			n++
		}
	}
	h := make(http.Header, n)
	for _, k := range endToEnd {
		if v := resp.Header[k]; len(v) > 0 {
			h[k] = v
		}
	}
	if name := streamOf(key); name != "" {
		s.policies.learn(name, h, now)
	}
	o := &object{
		key:       key,
		class:     cl,
		status:    resp.StatusCode,
		header:    h,
		block:     objectBlock(h),
		body:      newFill(resp.ContentLength, cancel),
		stored:    now,
		expires:   now.Add(fr.ttl),
		ttl:       fr.ttl,
		cacheable: fr.cacheable,
	}
	if cl == classPlaylist {
		o.hint = new(atomic.Uint64)
	}
	return o
}

// cancelOnClose releases a fetch's context once its body is read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

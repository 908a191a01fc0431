package pop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// upstream is the ordered set of origins a PoP fills from. Each is
// health-checked; a request goes to the first healthy one and, on a
// connection error or a 5xx, to the next. It is safe for concurrent use.
type upstream struct {
	targets []*target
	client  *http.Client
	log     *slog.Logger
}

// target is one origin.
type target struct {
	base    *url.URL
	healthy atomic.Bool
}

// parseTargets parses comma-separated base URLs.
func parseTargets(list []string) ([]*target, error) {
	var out []*target
	for _, raw := range list {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(strings.TrimSuffix(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("bad upstream URL %q: want http://host:port", raw)
		}
		t := &target{base: u}
		t.healthy.Store(true)
		out = append(out, t)
	}
	return out, nil
}

// order returns the targets to try: healthy ones first, in configured order.
func (u *upstream) order() []*target {
	out := make([]*target, 0, len(u.targets))
	for _, t := range u.targets {
		if t.healthy.Load() {
			out = append(out, t)
		}
	}
	for _, t := range u.targets {
		if !t.healthy.Load() {
			out = append(out, t)
		}
	}
	return out
}

// get requests key (a path and query) from the targets in turn. It returns
// the first response that is not a 5xx, or the last 5xx, or the last error.
// The caller closes the body.
func (u *upstream) get(ctx context.Context, key string, header http.Header) (*http.Response, error) {
	var lastErr error
	var last5xx *http.Response
	for _, t := range u.order() {
		resp, err := doGet(ctx, u.client, t.base.String()+key, header)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			if t.healthy.Swap(false) {
				u.log.Warn("origin unreachable; trying the next", "origin", t.base.String(), "error", err)
			}
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 {
			if last5xx != nil {
				last5xx.Body.Close()
			}
			last5xx = resp
			continue
		}
		if last5xx != nil {
			last5xx.Body.Close()
		}
		return resp, nil
	}
	if last5xx != nil {
		return last5xx, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no upstream configured")
	}
	return nil, lastErr
}

// doGet sends one GET.
func doGet(ctx context.Context, client *http.Client, rawURL string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return client.Do(req)
}

// checkHealth asks every target's /healthz every interval until ctx is
// done, marking them healthy or not.
func (u *upstream) checkHealth(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for _, t := range u.targets {
			ok := u.probe(ctx, t, interval)
			if was := t.healthy.Swap(ok); was != ok {
				u.log.Info("origin health changed", "origin", t.base.String(), "healthy", ok)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (u *upstream) probe(ctx context.Context, t *target, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := doGet(ctx, u.client, t.base.String()+"/healthz", nil)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

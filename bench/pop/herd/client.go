package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type clientConfig struct {
	systems []string
	n       int
	rounds  int
	// firstRound numbers the first round in the results.
	firstRound int
	origin     string
	prefix     string
	// token, when not empty, is sent in every request's path, /t/{token}
	// before /live/ (#23); the origin still sees the path without it.
	token   string
	hot     bool
	timeout time.Duration
	pause   time.Duration
	out     string
	label   string
	size    int
}

// target is one system under test: a name and the host:port of each node.
type target struct {
	name  string
	addrs []string
}

// herdResult is what one herd measured; latencies are in milliseconds.
type herdResult struct {
	Time   string `json:"time"`
	Label  string `json:"label,omitempty"`
	System string `json:"system"`
	N      int    `json:"n"`
	Round  int    `json:"round"`
	// Kind is "miss" for a new segment path, "hot" for the same path again.
	Kind       string `json:"kind"`
	Path       string `json:"path"`
	OK         int    `json:"ok"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	Bytes      int64  `json:"bytes"`
	// P50..Max run from each request's send to its last body byte.
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// TTFB is from the send to the first response byte.
	TTFB50 float64 `json:"ttfb_p50_ms"`
	TTFB99 float64 `json:"ttfb_p99_ms"`
	// P99Start runs from the herd's common instant instead of the send;
	// SendSpread is how long after that instant the last request was sent.
	P99Start   float64 `json:"p99_from_start_ms"`
	SendSpread float64 `json:"send_spread_ms"`
	Seconds    float64 `json:"seconds"`
	// OriginCount is the stub origin's request count for Path after the
	// herd (-1: not asked or no answer).
	OriginCount int            `json:"origin_count"`
	XCache      map[string]int `json:"x_cache"`
	// ByNode splits the latencies by node when a system has several.
	ByNode map[string]nodeResult `json:"by_node,omitempty"`
}

// nodeResult is the part of a herd that one node answered.
type nodeResult struct {
	OK     int     `json:"ok"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	TTFB50 float64 `json:"ttfb_p50_ms"`
}

func runClient(cfg clientConfig) error {
	if cfg.n < 1 || cfg.rounds < 1 || len(cfg.systems) == 0 {
		return errors.New("client: need -n >= 1, -rounds >= 1 and at least one -system")
	}
	var targets []target
	for _, s := range cfg.systems {
		t, err := parseTarget(s)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	var out io.Writer = io.Discard
	if cfg.out != "" {
		f, err := os.OpenFile(cfg.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	for r := range cfg.rounds {
		// Rotate the order so that no system always goes first.
		for i := range targets {
			t := targets[(r+i)%len(targets)]
			if err := herdSystem(cfg, t, cfg.firstRound+r, enc); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	return nil
}

// parseTarget reads NAME=URL[,URL...]; every URL must be on loopback.
func parseTarget(s string) (target, error) {
	name, urls, ok := strings.Cut(s, "=")
	if !ok || name == "" || urls == "" {
		return target{}, fmt.Errorf("-system %q: want NAME=URL[,URL...]", s)
	}
	t := target{name: name}
	for _, raw := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			return target{}, fmt.Errorf("-system %q: bad URL %q", s, raw)
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return target{}, fmt.Errorf("-system %q: %s is not a loopback address", s, u.Host)
		}
		t.addrs = append(t.addrs, u.Host)
	}
	return t, nil
}

// herdSystem opens n connections to t, runs one herd on a new path (and,
// with cfg.hot, one on the same path again), then closes them.
func herdSystem(cfg clientConfig, t target, round int, enc *json.Encoder) error {
	conns, err := dialAll(t.addrs, cfg.n)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	// A path of the layout (internal/layout): stream {prefix}-{system}-n{N},
	// a new epoch per herd, segment {round}.
	path := fmt.Sprintf("%s-%s-n%d/%s/v0/%d.m4s", cfg.prefix, t.name, cfg.n, strconv.FormatInt(time.Now().UnixNano(), 36), round)
	kinds := []string{"miss"}
	if cfg.hot {
		kinds = append(kinds, "hot")
	}
	for _, kind := range kinds {
		time.Sleep(cfg.pause) // let the last herd's connections and GC settle
		if err := redialDead(conns); err != nil {
			return err
		}
		reqPath := path
		if cfg.token != "" {
			reqPath = "/t/" + cfg.token + path
		}
		res := herd(conns, reqPath, cfg.timeout, cfg.size)
		res.Time, res.Label, res.System, res.N, res.Round, res.Kind = time.Now().Format(time.RFC3339), cfg.label, t.name, cfg.n, round, kind
		res.OriginCount = originCount(cfg.origin, path)
		fmt.Println(res.line())
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return nil
}

// reqResult is one request of a herd.
type reqResult struct {
	send, first, end time.Time
	bytes            int64
	xcache           string
	err              error
}

// herd has every connection GET path at one instant and measures each.
func herd(conns []*conn, path string, timeout time.Duration, size int) herdResult {
	results := make([]reqResult, len(conns))
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i, c := range conns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + c.addr + "\r\nUser-Agent: herd\r\nAccept: */*\r\n\r\n")
			ready.Done()
			<-start
			results[i] = c.get(req, timeout, size)
		}()
	}
	ready.Wait()
	time.Sleep(20 * time.Millisecond) // every goroutine parked on start
	t0 := time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)

	res := herdResult{Path: path, XCache: map[string]int{}, Seconds: wall.Seconds()}
	var lat, ttfb, fromStart []time.Duration
	nodeLat, nodeTTFB := map[string][]time.Duration{}, map[string][]time.Duration{}
	for i, r := range results {
		res.Bytes += r.bytes
		if r.err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = r.err.Error()
			}
			continue
		}
		res.OK++
		res.XCache[r.xcache]++
		lat = append(lat, r.end.Sub(r.send))
		ttfb = append(ttfb, r.first.Sub(r.send))
		fromStart = append(fromStart, r.end.Sub(t0))
		res.SendSpread = max(res.SendSpread, ms(r.send.Sub(t0)))
		a := conns[i].addr
		nodeLat[a] = append(nodeLat[a], r.end.Sub(r.send))
		nodeTTFB[a] = append(nodeTTFB[a], r.first.Sub(r.send))
	}
	if len(nodeLat) > 1 {
		res.ByNode = map[string]nodeResult{}
		for a, l := range nodeLat {
			slices.Sort(l)
			t := nodeTTFB[a]
			slices.Sort(t)
			res.ByNode[a] = nodeResult{OK: len(l), P50: pct(l, 50), P99: pct(l, 99), TTFB50: pct(t, 50)}
		}
	}
	slices.Sort(lat)
	slices.Sort(ttfb)
	slices.Sort(fromStart)
	res.P50, res.P90, res.P99, res.Max = pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100)
	res.TTFB50, res.TTFB99 = pct(ttfb, 50), pct(ttfb, 99)
	res.P99Start = pct(fromStart, 99)
	return res
}

// get sends one request on c and reads the whole response.
func (c *conn) get(req []byte, timeout time.Duration, size int) (r reqResult) {
	c.fb.at = time.Time{}
	r.send = time.Now()
	c.c.SetDeadline(r.send.Add(timeout))
	defer func() {
		if r.err != nil {
			c.dead = true
		}
	}()
	if _, r.err = c.c.Write(req); r.err != nil {
		return r
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		r.err = err
		return r
	}
	r.bytes, r.err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	r.first = c.fb.at
	if resp.Close {
		c.dead = true
	}
	switch {
	case r.err != nil:
	case resp.StatusCode != http.StatusOK:
		r.err = fmt.Errorf("status %d", resp.StatusCode)
	case r.bytes != int64(size):
		r.err = fmt.Errorf("body of %d bytes, want %d", r.bytes, size)
	}
	r.xcache = cacheStatus(resp.Header)
	return r
}

// cacheStatus names how a system says it answered: X-Cache (ours, and
// nginx's $upstream_cache_status as configured by run.sh), else Varnish's
// X-Varnish, which holds two transaction ids on a hit.
func cacheStatus(h http.Header) string {
	if v := h.Get("X-Cache"); v != "" {
		return strings.ToLower(v)
	}
	if v := h.Get("X-Varnish"); v != "" {
		if strings.Contains(strings.TrimSpace(v), " ") {
			return "hit"
		}
		return "miss"
	}
	return "?"
}

// originCount asks the stub origin how often it was asked for path.
func originCount(origin, path string) int {
	if origin == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(origin + "/count?path=" + url.QueryEscape(path))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile p of sorted d, in milliseconds.
func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return ms(d[max(i-1, 0)])
}

func (r herdResult) line() string {
	var xc []string
	for k, v := range r.XCache {
		xc = append(xc, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(xc)
	s := fmt.Sprintf("%-8s n=%-5d r%d %-4s ok %5d err %d | p50 %7.1f p90 %7.1f p99 %7.1f max %7.1f ms | ttfb p50 %6.1f p99 %6.1f | p99@t0 %7.1f spread %5.1f | origin %2d | %s | %.2f GB in %.2f s",
		r.System, r.N, r.Round, r.Kind, r.OK, r.Errors, r.P50, r.P90, r.P99, r.Max, r.TTFB50, r.TTFB99,
		r.P99Start, r.SendSpread, r.OriginCount, strings.Join(xc, " "), float64(r.Bytes)/1e9, r.Seconds)
	if r.FirstError != "" {
		s += " | first error: " + r.FirstError
	}
	var nodes []string
	for a := range r.ByNode {
		nodes = append(nodes, a)
	}
	slices.Sort(nodes)
	for _, a := range nodes {
		nr := r.ByNode[a]
		s += fmt.Sprintf("\n    node %s: ok %d p50 %.1f p99 %.1f ttfb p50 %.1f ms", a, nr.OK, nr.P50, nr.P99, nr.TTFB50)
	}
	return s
}

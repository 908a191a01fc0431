package main

import (
	"bufio"
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
	"syscall"
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
	hot        bool
	timeout    time.Duration
	pause      time.Duration
	out        string
	label      string
	size       int
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
	path := fmt.Sprintf("%s/%s/n%d/%d-r%d/seg.m4s", cfg.prefix, t.name, cfg.n, time.Now().UnixNano(), round)
	kinds := []string{"miss"}
	if cfg.hot {
		kinds = append(kinds, "hot")
	}
	for _, kind := range kinds {
		time.Sleep(cfg.pause) // let the last herd's connections and GC settle
		if err := redialDead(conns); err != nil {
			return err
		}
		res := herd(conns, path, cfg.timeout, cfg.size)
		res.Time, res.Label, res.System, res.N, res.Round, res.Kind = time.Now().Format(time.RFC3339), cfg.label, t.name, cfg.n, round, kind
		res.OriginCount = originCount(cfg.origin, path)
		fmt.Println(res.line())
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	return nil
}

// conn is one client connection, reused across herds (keep-alive).
type conn struct {
	addr string
	c    net.Conn
	fb   *firstByte
	br   *bufio.Reader
	dead bool
}

// firstByte records when the first byte after a reset arrived.
type firstByte struct {
	r  io.Reader
	at time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

func dial(addr string) (*conn, error) {
	var err error
	for attempt := range 5 {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			fb := &firstByte{r: c}
			return &conn{addr: addr, c: c, fb: fb, br: bufio.NewReaderSize(fb, 16<<10)}, nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return nil, fmt.Errorf("dial %s: %w", addr, err)
}

// dialAll opens n connections spread evenly over addrs, a few at a time so
// that no listen backlog overflows.
func dialAll(addrs []string, n int) ([]*conn, error) {
	conns := make([]*conn, n)
	errs := make([]error, n)
	parallel(n, 64, func(i int) { conns[i], errs[i] = dial(addrs[i%len(addrs)]) })
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

// redialDead replaces the connections that a server closed while idle.
func redialDead(conns []*conn) error {
	errs := make([]error, len(conns))
	parallel(len(conns), 64, func(i int) {
		c := conns[i]
		if !c.dead && alive(c.c) {
			return
		}
		c.c.Close()
		nc, err := dial(c.addr)
		if err != nil {
			errs[i] = err
			return
		}
		conns[i] = nc
	})
	return errors.Join(errs...)
}

// alive peeks at the socket without blocking: EOF or an error means the
// peer closed it.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n > 0 || errors.Is(err, syscall.EAGAIN)
		return true
	})
	return ok
}

// parallel runs f(0..n-1) on at most workers goroutines.
func parallel(n, workers int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
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
	for _, r := range results {
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
	return s
}

package gslb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// URL is the balancer's base URL; reports go to URL/api/report.
	// Required.
	URL string
	// Name is the PoP's name in the balancer's map. Required.
	Name string
	// PublicURL is the base URL viewers are sent to. Required.
	PublicURL string
	// CapacityViewers and CapacityBPS are the PoP's capacity; zero means
	// no limit on that count.
	CapacityViewers int64
	CapacityBPS     float64
	// Interval is the time between reports. Zero means 3 s.
	Interval time.Duration
	// Timeout bounds the wait for a report's acknowledgement; past it
	// the session is given up and opened again. Zero means 3 × Interval.
	Timeout time.Duration
	// Load measures the PoP: its active viewers, and the bytes it served
	// since it started (egress is their rate between reports). Required.
	Load func() (viewers, bytesServed int64)
	// Overloaded, when not nil, says whether the PoP takes no new viewers
	// now (pop.Server.Overloaded). Nil means it always does.
	Overloaded func() bool
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// Transport sends the reports. Nil means a direct connection (no
	// proxy: a session is only as good as its connection) with dial and
	// response header timeouts.
	Transport http.RoundTripper
	// Logger receives session failures. Nil means discard.
	Logger *slog.Logger
}

// Reporter is a PoP's side of the reports: it keeps a report session
// open with the balancer (see SessionContentType), sends the PoP's load
// every Interval, and opens the session again when it fails. Its methods
// are safe for concurrent use; Run must be called once.
type Reporter struct {
	cfg      ReporterConfig
	log      *slog.Logger
	client   *http.Client
	endpoint string

	draining  atomic.Bool
	drainNow  chan struct{} // wakes the session to report at once
	drained   chan struct{} // closed once a draining report is acknowledged
	drainOnce sync.Once

	// The previous measurement, for the egress rate; used only by Run's
	// goroutine.
	lastAt    time.Time
	lastBytes int64
	lastBPS   float64
}

// NewReporter validates cfg and returns a Reporter.
func NewReporter(cfg ReporterConfig) (*Reporter, error) {
	if err := checkBaseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("gslb reporter: balancer URL: %w", err)
	}
	probe := Report{Name: cfg.Name, URL: cfg.PublicURL, CapacityViewers: cfg.CapacityViewers, CapacityBPS: cfg.CapacityBPS}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("gslb reporter: %w", err)
	}
	if cfg.Load == nil {
		return nil, errors.New("gslb reporter: Load is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * cfg.Interval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   1,
		}
	}
	return &Reporter{
		cfg:      cfg,
		log:      cfg.Logger,
		client:   &http.Client{Transport: cfg.Transport}, // no Timeout: a session lasts
		endpoint: strings.TrimRight(cfg.URL, "/") + "/api/report",
		drainNow: make(chan struct{}, 1),
		drained:  make(chan struct{}),
	}, nil
}

// Run reports until ctx is done, then closes the session (the balancer
// then stops sending viewers at once) and returns nil.
func (r *Reporter) Run(ctx context.Context) error {
	_, r.lastBytes = r.cfg.Load()
	r.lastAt = time.Now()
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for {
		opened := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(opened) > 2*r.cfg.Interval {
			backoff = minBackoff // it worked for a while
		}
		r.log.Warn("gslb report session ended; reopening", "error", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.Interval)
	}
}

// Drain makes every report from now on ask for no new viewers, sends one
// at once, and returns when the balancer acknowledged one, or ctx's
// error.
func (r *Reporter) Drain(ctx context.Context) error {
	r.draining.Store(true)
	select {
	case r.drainNow <- struct{}{}:
	default: // a wake-up is pending already
	}
	select {
	case <-r.drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("draining report not acknowledged: %w", ctx.Err())
	}
}

// errSessionClosed says the balancer ended the session's response.
var errSessionClosed = errors.New("the balancer closed the session")

// session opens one report session and reports on it until it fails or
// ctx is done; then it ends the request body cleanly, so that the
// balancer sees the PoP leave rather than fail.
func (r *Reporter) session(ctx context.Context) error {
	// The request outlives ctx by the moment its clean end takes.
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, r.endpoint, pr)
	if err != nil {
		return fmt.Errorf("report session: %w", err)
	}
	req.Header.Set("Content-Type", SessionContentType)
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	// The balancer answers the headers at once, before any report.
	stop := context.AfterFunc(ctx, cancel)
	resp, err := r.client.Do(req)
	stop()
	if err != nil {
		pw.Close()
		return fmt.Errorf("open report session: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		pw.Close()
		return fmt.Errorf("open report session: %s: %s", resp.Status, bytesTrim(msg))
	}
	acks := make(chan error)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		readAcks(reqCtx, resp.Body, acks)
	}()
	defer func() {
		cancel()
		pw.CloseWithError(context.Canceled)
		resp.Body.Close()
		wg.Wait()
	}()

	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		rep := r.measure()
		if err := r.send(ctx, pw, acks, rep); err != nil {
			if ctx.Err() != nil {
				finish(pw, acks)
			}
			return err
		}
		if rep.Draining {
			r.drainOnce.Do(func() { close(r.drained) })
		}
		select {
		case <-ctx.Done():
			finish(pw, acks)
			return ctx.Err()
		case <-tick.C:
		case <-r.drainNow:
		}
	}
}

// finish ends a session's body and waits, a second at most, for the
// balancer to end the response.
func finish(pw *io.PipeWriter, acks <-chan error) {
	pw.Close()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-acks:
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

// send writes one report and waits for its acknowledgement, both within
// Timeout.
func (r *Reporter) send(ctx context.Context, pw *io.PipeWriter, acks <-chan error, rep Report) error {
	line, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	errTimeout := fmt.Errorf("no acknowledgement within %v", r.cfg.Timeout)
	// A write blocks while the transport cannot send; closing the pipe
	// releases it.
	t := time.AfterFunc(r.cfg.Timeout, func() { pw.CloseWithError(errTimeout) })
	_, err = pw.Write(append(line, '\n'))
	if !t.Stop() {
		return fmt.Errorf("send report: %w", errTimeout)
	}
	if err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	wait := time.NewTimer(r.cfg.Timeout)
	defer wait.Stop()
	select {
	case err, ok := <-acks:
		if !ok {
			return errSessionClosed
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return errTimeout
	}
}

// readAcks passes each acknowledgement on the session's response to acks
// (nil, or the balancer's error), then the reason the response ended, and
// closes acks.
func readAcks(ctx context.Context, body io.Reader, acks chan<- error) {
	defer close(acks)
	lines := bufio.NewScanner(body)
	for lines.Scan() {
		var a struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		err := json.Unmarshal(lines.Bytes(), &a)
		switch {
		case err != nil:
			err = fmt.Errorf("acknowledgement: %w", err)
		case !a.OK:
			err = fmt.Errorf("balancer refused the report: %s", a.Error)
		}
		select {
		case acks <- err:
		case <-ctx.Done():
			return
		}
	}
	err := lines.Err()
	if err == nil {
		err = errSessionClosed
	}
	select {
	case acks <- err:
	case <-ctx.Done():
	}
}

// measure reads the PoP's load into a report. The egress rate is updated
// over at least half an interval, so that a report sent out of turn (when
// draining starts) does not measure a sliver.
func (r *Reporter) measure() Report {
	viewers, served := r.cfg.Load()
	now := time.Now()
	if dt := now.Sub(r.lastAt); dt >= r.cfg.Interval/2 {
		r.lastBPS = min(max(float64(served-r.lastBytes)*8/dt.Seconds(), 0), maxBPS)
		r.lastAt, r.lastBytes = now, served
	}
	return Report{
		Name:            r.cfg.Name,
		URL:             r.cfg.PublicURL,
		Viewers:         min(max(viewers, 0), maxViewers),
		EgressBPS:       r.lastBPS,
		CapacityViewers: r.cfg.CapacityViewers,
		CapacityBPS:     r.cfg.CapacityBPS,
		Draining:        r.draining.Load(),
		Overloaded:      r.cfg.Overloaded != nil && r.cfg.Overloaded(),
	}
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// beacon is one QoE report from a page (POST /api/qoe).
type beacon struct {
	Stream       string   `json:"stream"`
	Session      string   `json:"session"`
	Event        string   `json:"event"`
	Format       string   `json:"format,omitempty"`
	FirstFrameMS *float64 `json:"first_frame_ms,omitempty"`
	StallMS      *float64 `json:"stall_ms,omitempty"`
	Bitrate      *float64 `json:"bitrate,omitempty"`
	BufferS      *float64 `json:"buffer_s,omitempty"`
	LatencyS     *float64 `json:"latency_s,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// maxBeaconBytes bounds a beacon's body.
const maxBeaconBytes = 2048

var (
	// validSession is the alphabet and length of what may stand in a
	// session field; parseToken says whether it is a token.
	validSession = regexp.MustCompile(`^[A-Za-z0-9_-]{0,64}$`)
	validStream  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	validEvents  = map[string]bool{"start": true, "stall": true, "switch": true, "heartbeat": true, "error": true}
)

// errBeacon marks a beacon refused for its content.
var errBeacon = errors.New("invalid beacon")

// parseBeacon decodes and validates a beacon body; it never trusts the
// stream name, which the caller checks against the live streams, nor the
// session, whose token the caller verifies.
func parseBeacon(body []byte) (*beacon, error) {
	var b beacon
	if err := decodeStrict(body, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", errBeacon, err)
	}
	if err := checkStreamSession(b.Stream, b.Session); err != nil {
		return nil, fmt.Errorf("%w: %v", errBeacon, err)
	}
	switch {
	case !validEvents[b.Event]:
		return nil, fmt.Errorf("%w: event %q", errBeacon, b.Event)
	case b.Format != "" && b.Format != "hls" && b.Format != "dash":
		return nil, fmt.Errorf("%w: format %q", errBeacon, b.Format)
	case len(b.Error) > 200:
		return nil, fmt.Errorf("%w: error text too long", errBeacon)
	}
	for _, f := range []struct {
		name     string
		v        *float64
		min, max float64
	}{
		{"first_frame_ms", b.FirstFrameMS, 0, 600000},
		{"stall_ms", b.StallMS, 0, 3600000},
		{"bitrate", b.Bitrate, 0, 1e9},
		{"buffer_s", b.BufferS, 0, 3600},
		{"latency_s", b.LatencyS, -60, 3600},
	} {
		if f.v != nil && !(*f.v >= f.min && *f.v <= f.max) { // also refuses NaN
			return nil, fmt.Errorf("%w: %s out of range", errBeacon, f.name)
		}
	}
	if b.Event == "start" && b.FirstFrameMS == nil {
		return nil, fmt.Errorf("%w: start without first_frame_ms", errBeacon)
	}
	return &b, nil
}

// decodeStrict decodes body, one JSON object with no field v lacks, into v.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// checkStreamSession checks the fields that beacons and session requests
// share: a stream name, and what may stand in a session field.
func checkStreamSession(stream, session string) error {
	switch {
	case !validStream.MatchString(stream):
		return errors.New("stream name")
	case !validSession.MatchString(session):
		return errors.New("session must match [A-Za-z0-9_-]{0,64}")
	}
	return nil
}

// limiter is a token bucket per client address, with a bound on the
// addresses it remembers. It is safe for concurrent use.
type limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets *simplelru.LRU[string, *bucket] // guarded by mu
}

// bucket is a token bucket; its owner guards it.
type bucket struct {
	tokens float64
	at     time.Time
}

// take refills b at rate tokens per second up to burst, then takes a
// token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.tokens = min(burst, b.tokens+max(0, now.Sub(b.at).Seconds())*rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newLimiter(rate, burst float64, clients int) *limiter {
	b, _ := simplelru.NewLRU[string, *bucket](clients, nil)
	return &limiter{rate: rate, burst: burst, buckets: b}
}

// allow takes a token for client at now.
func (l *limiter) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(client)
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets.Add(client, b)
	}
	return b.take(now, l.rate, l.burst)
}

// clientAddr is the address a beacon is counted against: the connection's,
// never a header a client could forge.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveBeacon handles POST /api/qoe. A beacon counts only with a session
// token this server issued for the stream (POST /api/qoe/session), within
// its lifetime and its session's beacon rate.
func (s *Server) serveBeacon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	now := time.Now()
	if !s.limit.allow(clientAddr(r), now) {
		s.refuseBeacon(w, "rate", http.StatusTooManyRequests, "too many beacons")
		return
	}
	body, err := readLimited(w, r, maxBeaconBytes)
	if err != nil {
		s.refuseBeacon(w, "size", http.StatusRequestEntityTooLarge, "beacon too large")
		return
	}
	b, err := parseBeacon(body)
	if err != nil {
		s.refuseBeacon(w, "invalid", http.StatusBadRequest, err.Error())
		return
	}
	tok, err := s.signer.verify(b.Session, b.Stream, now)
	if err != nil {
		s.refuseBeacon(w, sessionReason(err), http.StatusForbidden, err.Error())
		return
	}
	if !s.live(r.Context(), b.Stream) {
		s.refuseBeacon(w, "stream", http.StatusNotFound, "no such live stream")
		return
	}
	switch s.qoe.record(b.Stream, tok.id, b, now) {
	case refusedFull:
		s.refuseBeacon(w, "sessions", http.StatusTooManyRequests, "too many sessions")
		return
	case refusedRate:
		s.refuseBeacon(w, "session_rate", http.StatusTooManyRequests, "too many beacons in this session")
		return
	}
	s.metrics.beacons.WithLabelValues(b.Event).Inc()
	if b.Event == "start" {
		s.metrics.firstFrame.Observe(*b.FirstFrameMS / 1000)
	}
	w.WriteHeader(http.StatusNoContent)
}

// refuseBeacon answers a beacon that does not count.
func (s *Server) refuseBeacon(w http.ResponseWriter, reason string, code int, msg string) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.drops.note("beacon", reason, msg, time.Now())
	http.Error(w, msg, code)
}

// readLimited reads a body of at most n bytes.
func readLimited(w http.ResponseWriter, r *http.Request, n int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, n))
	return buf.Bytes(), err
}

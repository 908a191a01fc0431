package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/golivestream/live/internal/streaminfo"
)

// testServer is a Server with streams demo and other live, over ended, and
// cfg's other fields.
func testServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	streams := []streaminfo.Stream{{Name: "demo", Live: true}, {Name: "other", Live: true}, {Name: "over", Live: false}}
	cfg.Streams = func(context.Context) ([]streaminfo.Stream, error) { return streams, nil }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// postFrom posts body to path as a client at addr.
func postFrom(s *Server, addr, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.RemoteAddr = net.JoinHostPort(addr, "1234")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// askSession posts a session request as a page at addr does: renew empty
// for a new session. It returns the status and the token, if any.
func askSession(t *testing.T, s *Server, addr, stream, renew string) (int, string) {
	t.Helper()
	body, err := json.Marshal(sessionRequest{Stream: stream, Session: renew})
	if err != nil {
		t.Fatal(err)
	}
	w := postFrom(s, addr, "/api/qoe/session", string(body))
	if w.Code != http.StatusOK {
		return w.Code, ""
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var resp sessionResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("session response %q: %v", w.Body, err)
	}
	if resp.ExpiresIn != s.cfg.SessionTTL.Seconds() {
		t.Errorf("expires_in %v, want %v", resp.ExpiresIn, s.cfg.SessionTTL.Seconds())
	}
	return w.Code, resp.Session
}

// count is c's value.
func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// newSession starts a session of stream as a page at addr does.
func newSession(t *testing.T, s *Server, addr, stream string) string {
	t.Helper()
	code, tok := askSession(t, s, addr, stream, "")
	if code != http.StatusOK {
		t.Fatalf("new session of %s from %s: %d", stream, addr, code)
	}
	return tok
}

// TestSessionIssuanceBounded: one address (or IPv6 /64) starts at most
// SessionsPerMinute sessions at once, whatever it asks; several viewers
// behind one NAT address get theirs, others are not held back, and asking
// for a stream that is not live spends nothing.
func TestSessionIssuanceBounded(t *testing.T) {
	s := testServer(t, Config{})
	for _, tc := range []struct {
		name, addr, stream string
		n                  int // requests
		want               int // sessions issued
	}{
		{"ten viewers behind one address", "192.0.2.1", "demo", 10, 10},
		{"the eleventh waits", "192.0.2.1", "demo", 1, 0},
		{"nor for another stream", "192.0.2.1", "other", 1, 0},
		{"nor as IPv4-mapped IPv6", "::ffff:192.0.2.1", "demo", 1, 0},
		{"another address is not held back", "192.0.2.2", "demo", 10, 10},
		{"no session for an ended stream", "192.0.2.3", "over", 20, 0},
		{"which spent none of the quota", "192.0.2.3", "demo", 20, 10},
		{"an IPv6 /64 is one address", "2001:db8:1:2::1", "demo", 6, 6},
		{"another address in that /64", "2001:db8:1:2:ffff::9", "demo", 6, 4},
		{"another /64", "2001:db8:1:3::1", "demo", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issued := 0
			for range tc.n {
				code, _ := askSession(t, s, tc.addr, tc.stream, "")
				switch code {
				case http.StatusOK:
					issued++
				case http.StatusTooManyRequests, http.StatusNotFound:
				default:
					t.Fatalf("status %d", code)
				}
			}
			if issued != tc.want {
				t.Errorf("%d sessions issued, want %d", issued, tc.want)
			}
		})
	}

	// What a hundred addresses can mint at once, and the users they make.
	s = testServer(t, Config{BeaconRate: 1000, BeaconBurst: 1000})
	for i := range 100 {
		addr := net.IPv4(198, 51, 100, byte(i)).String()
		for range 50 {
			if _, tok := askSession(t, s, addr, "demo", ""); tok != "" {
				postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+tok+`","event":"stall"}`)
			}
		}
	}
	if n := count(t, s.metrics.sessions.WithLabelValues("new")); n != 1000 {
		t.Errorf("100 addresses asking 50 times each got %v sessions, want 1000", n)
	}
	if f := s.qoe.figures("demo", time.Now()); f.Users != 1000 {
		t.Errorf("%d users, want 1000", f.Users)
	}
}

// TestSessionRenewal: a renewed token is the same session, one user; it
// costs no quota; only a good token of the stream is renewed.
func TestSessionRenewal(t *testing.T) {
	s := testServer(t, Config{SessionsPerMinute: 1})
	const addr = "192.0.2.1"
	first := newSession(t, s, addr, "demo")
	code, renewed := askSession(t, s, addr, "demo", first)
	if code != http.StatusOK || renewed == "" {
		t.Fatalf("renewal: %d", code)
	}
	a, errA := parseToken(first)
	b, errB := parseToken(renewed)
	if err := errors.Join(errA, errB); err != nil || a.id != b.id {
		t.Fatalf("renewed as another session (%v)", err)
	}
	for _, tok := range []string{first, renewed} {
		if w := postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+tok+`","event":"heartbeat"}`); w.Code != http.StatusNoContent {
			t.Fatalf("beacon: %d %s", w.Code, w.Body)
		}
	}
	if f := s.qoe.figures("demo", time.Now()); f.Users != 1 {
		t.Errorf("a session and its renewal are %d users, want 1", f.Users)
	}

	expired := s.signer.issue(a.id, "demo", time.Now().Add(-11*time.Minute)).String()
	for _, tc := range []struct {
		name, stream, token string
		want                int
		reason              string
	}{
		{"renewed again", "demo", renewed, http.StatusOK, ""},
		{"expired", "demo", expired, http.StatusForbidden, "session_expired"},
		{"another stream's", "other", renewed, http.StatusForbidden, "session_forged"},
		{"made up", "demo", strings.Repeat("A", tokenChars), http.StatusForbidden, "session_forged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, s.metrics.sessionRejected.WithLabelValues(tc.reason))
			if code, _ := askSession(t, s, addr, tc.stream, tc.token); code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			if tc.reason != "" && count(t, s.metrics.sessionRejected.WithLabelValues(tc.reason)) != before+1 {
				t.Errorf("not counted as %s", tc.reason)
			}
		})
	}
}

var sessionRequestCases = []struct {
	name, body string
	ok         bool
}{
	{"new", `{"stream":"demo"}`, true},
	{"renewal", `{"stream":"demo","session":"` + strings.Repeat("A", tokenChars) + `"}`, true},
	{"no stream", `{}`, false},
	{"bad stream", `{"stream":"../x"}`, false},
	{"bad session", `{"stream":"demo","session":"a b"}`, false},
	{"unknown field", `{"stream":"demo","viewers":1000}`, false},
	{"two objects", `{"stream":"demo"}{}`, false},
	{"not json", `demo`, false},
}

func TestParseSessionRequest(t *testing.T) {
	for _, tc := range sessionRequestCases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseSessionRequest([]byte(tc.body))
			if tc.ok && (err != nil || req == nil) {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, errSessionRequest) {
				t.Fatalf("accepted %+v, err %v", req, err)
			}
		})
	}
}

// FuzzParseSessionRequest: session requests come from anyone.
func FuzzParseSessionRequest(f *testing.F) {
	for _, tc := range sessionRequestCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseSessionRequest(body)
		if err == nil && (!validStream.MatchString(req.Stream) || !validSession.MatchString(req.Session)) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func TestIssueKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := issueKey(tc.addr); got != tc.want {
			t.Errorf("issueKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestNewSessionConfig: a short key or lifetime is refused, not stretched.
func TestNewSessionConfig(t *testing.T) {
	streams := func(context.Context) ([]streaminfo.Stream, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Streams: streams}, true},
		{"a key of 16 bytes", Config{Streams: streams, SessionKey: make([]byte, 16)}, true},
		{"a key of 15 bytes", Config{Streams: streams, SessionKey: make([]byte, 15)}, false},
		{"a lifetime of a minute", Config{Streams: streams, SessionTTL: time.Minute}, true},
		{"a lifetime of 30 s", Config{Streams: streams, SessionTTL: 30 * time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); (err == nil) != tc.ok {
				t.Errorf("error %v", err)
			}
		})
	}
}

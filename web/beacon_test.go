package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/internal/streaminfo"
)

// sess stands in a session field; whether it is a token is not parseBeacon's business.
const sess = "abcdefghijklmnop"

var beaconCases = []struct {
	name, body string
	ok         bool
}{
	{"start", `{"stream":"demo","session":"` + sess + `","event":"start","format":"hls","first_frame_ms":850}`, true},
	{"stall", `{"stream":"demo","session":"` + sess + `","event":"stall","stall_ms":2000}`, true},
	{"heartbeat", `{"stream":"demo","session":"` + sess + `","event":"heartbeat","bitrate":600000,"buffer_s":3.2,"latency_s":4.1}`, true},
	{"error", `{"stream":"demo","session":"` + sess + `","event":"error","error":"media error"}`, true},
	{"start without first frame", `{"stream":"demo","session":"` + sess + `","event":"start"}`, false},
	{"unknown event", `{"stream":"demo","session":"` + sess + `","event":"buy"}`, false},
	{"unknown field", `{"stream":"demo","session":"` + sess + `","event":"stall","x":1}`, false},
	{"no session", `{"stream":"demo","event":"stall"}`, true}, // refused later: errSessionMissing
	{"session not base64url", `{"stream":"demo","session":"abc.def","event":"stall"}`, false},
	{"long session", `{"stream":"demo","session":"` + strings.Repeat("A", 65) + `","event":"stall"}`, false},
	{"bad stream name", `{"stream":"../etc","session":"` + sess + `","event":"stall"}`, false},
	{"negative bitrate", `{"stream":"demo","session":"` + sess + `","event":"switch","bitrate":-1}`, false},
	{"huge first frame", `{"stream":"demo","session":"` + sess + `","event":"start","first_frame_ms":1e12}`, false},
	{"bad format", `{"stream":"demo","session":"` + sess + `","event":"stall","format":"rtmp"}`, false},
	{"two objects", `{"stream":"demo","session":"` + sess + `","event":"stall"}{}`, false},
	{"not json", `stall`, false},
	{"long error", `{"stream":"demo","session":"` + sess + `","event":"error","error":"` + strings.Repeat("x", 201) + `"}`, false},
}

func TestParseBeacon(t *testing.T) {
	for _, tc := range beaconCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseBeacon([]byte(tc.body))
			if tc.ok && (err != nil || b == nil) {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, errBeacon) {
				t.Fatalf("accepted %+v, err %v", b, err)
			}
		})
	}
}

// FuzzParseBeacon: beacons come from anyone; whatever the body, parsing
// does not panic and what it accepts is within the bounds.
func FuzzParseBeacon(f *testing.F) {
	for _, tc := range beaconCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseBeacon(body)
		if err != nil {
			return
		}
		if !validStream.MatchString(b.Stream) || !validSession.MatchString(b.Session) || !validEvents[b.Event] {
			t.Fatalf("accepted %+v", b)
		}
		if b.FirstFrameMS != nil && (*b.FirstFrameMS < 0 || *b.FirstFrameMS > 600000) {
			t.Fatalf("accepted first_frame_ms %v", *b.FirstFrameMS)
		}
	})
}

func TestLimiter(t *testing.T) {
	l := newLimiter(2, 3, 2)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allow("a", now) {
			t.Fatalf("burst request %d refused", i)
		}
	}
	if l.allow("a", now) {
		t.Fatal("a fourth request in the same instant was allowed")
	}
	if !l.allow("b", now) {
		t.Fatal("another client was limited")
	}
	if !l.allow("a", now.Add(500*time.Millisecond)) {
		t.Fatal("no token refilled after 0.5 s at 2/s")
	}
	if l.allow("a", now.Add(500*time.Millisecond)) {
		t.Fatal("more than one token refilled")
	}
}

// TestBeaconEndpoint checks the HTTP side: sizes, unknown or ended
// streams, rates, and that accepted beacons reach the figures.
func TestBeaconEndpoint(t *testing.T) {
	streams := []streaminfo.Stream{{Name: "demo", Live: true}, {Name: "over", Live: false}}
	s, err := New(Config{
		Streams:     func(context.Context) ([]streaminfo.Stream, error) { return streams, nil },
		BeaconRate:  1,
		BeaconBurst: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "192.0.2.1"
	tok := newSession(t, s, addr, "demo") // the first request of the burst of 6
	post := func(body string) int {
		w := postFrom(s, addr, "/api/qoe", body)
		return w.Code
	}
	if code := post(`{"stream":"demo","session":"` + tok + `","event":"start","first_frame_ms":900}`); code != http.StatusNoContent {
		t.Errorf("valid beacon: %d", code)
	}
	if code := post(`{"stream":"demo","session":"` + tok + `","event":"stall","stall_ms":2000}`); code != http.StatusNoContent {
		t.Errorf("valid stall: %d", code)
	}
	if code := post(`{"stream":"nope","session":"` + tok + `","event":"stall"}`); code != http.StatusForbidden {
		t.Errorf("unknown stream: %d, want 403 (the session is demo's)", code)
	}
	if code := post(`{"stream":"over","session":"` + s.signer.newSession("over", time.Now()).String() + `","event":"stall"}`); code != http.StatusNotFound {
		t.Errorf("ended stream: %d, want 404", code)
	}
	if code := post(`{"pad":"` + strings.Repeat("x", 4096) + `"}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge beacon: %d, want 413", code)
	}
	if code := post(`{}`); code != http.StatusTooManyRequests {
		t.Errorf("seventh request in a burst of 6: %d, want 429", code)
	}
	f := s.qoe.figures("demo", time.Now())
	if f.Users != 1 || f.Stalled != 1 || f.StallRate != 1 || f.FirstFrameP50 != 900 {
		t.Errorf("figures %+v, want 1 user, 1 stalled, first frame 900 ms", f)
	}
}

// TestForgedBeaconsDropped: a beacon counts only with a token this process
// issued for its stream, within its lifetime; the others are refused,
// counted by reason, and add no user.
func TestForgedBeaconsDropped(t *testing.T) {
	elsewhere := testServer(t, Config{}) // another process: another key
	for _, tc := range []struct {
		name   string
		token  func(s *Server) string
		want   int
		reason string
	}{
		{"issued", func(s *Server) string { return newSession(t, s, "192.0.2.1", "demo") }, http.StatusNoContent, ""},
		{"no session", func(*Server) string { return "" }, http.StatusForbidden, "session_missing"},
		{"an old page's random id", func(*Server) string { return "abcdefghijklmnopqrstuvwx" }, http.StatusForbidden, "session_forged"},
		{"bad signature", func(s *Server) string {
			tok, err := parseToken(newSession(t, s, "192.0.2.1", "demo"))
			if err != nil {
				t.Fatal(err)
			}
			tok.mac[3] ^= 0x40
			return tok.String()
		}, http.StatusForbidden, "session_forged"},
		{"another stream's", func(s *Server) string { return newSession(t, s, "192.0.2.1", "other") }, http.StatusForbidden, "session_forged"},
		{"another process's", func(*Server) string { return newSession(t, elsewhere, "192.0.2.1", "demo") }, http.StatusForbidden, "session_forged"},
		{"expired", func(s *Server) string {
			return s.signer.newSession("demo", time.Now().Add(-s.cfg.SessionTTL-time.Second)).String()
		}, http.StatusForbidden, "session_expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testServer(t, Config{})
			body := `{"stream":"demo","session":"` + tc.token(s) + `","event":"stall","stall_ms":2000}`
			before := count(t, s.metrics.rejected.WithLabelValues(tc.reason))
			if w := postFrom(s, "192.0.2.1", "/api/qoe", body); w.Code != tc.want {
				t.Fatalf("status %d %q, want %d", w.Code, w.Body, tc.want)
			}
			if tc.reason != "" && count(t, s.metrics.rejected.WithLabelValues(tc.reason)) != before+1 {
				t.Errorf("not counted as %s", tc.reason)
			}
			wantUsers := 0
			if tc.want == http.StatusNoContent {
				wantUsers = 1
			}
			if f := apiQoE(t, s, "demo"); f.Users != wantUsers || f.Stalled != wantUsers {
				t.Errorf("figures %+v, want %d users, all stalled", f, wantUsers)
			}
		})
	}
}

// apiQoE is stream's QoE as GET /api/streams/{name} gives it.
func apiQoE(t *testing.T, s *Server, stream string) QoE {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/streams/"+url.PathEscape(stream), nil))
	var v StreamView
	if err := json.Unmarshal(w.Body.Bytes(), &v); w.Code != http.StatusOK || err != nil {
		t.Fatalf("stream %s: %d %v", stream, w.Code, err)
	}
	return v.QoE
}

// TestOneSessionCountsOnce: 69 stall beacons of one session are one user,
// and a session's beacons beyond its rate are refused; tokens altered to
// pass for other sessions are refused too.
func TestOneSessionCountsOnce(t *testing.T) {
	s := testServer(t, Config{BeaconRate: 1000, BeaconBurst: 1000})
	const addr = "192.0.2.1"
	tok := newSession(t, s, addr, "demo")
	codes := map[int]int{}
	for i := range 69 {
		session := tok
		if i%2 == 1 { // one character changed: another session, if it passed
			c := byte('A')
			if tok[i%(tokenChars-1)] == c {
				c = 'B'
			}
			session = tok[:i%(tokenChars-1)] + string(c) + tok[i%(tokenChars-1)+1:]
		}
		w := postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+session+`","event":"stall","stall_ms":2000}`)
		codes[w.Code]++
	}
	burst := s.cfg.SessionBeaconBurst
	want := map[int]int{http.StatusNoContent: burst, http.StatusTooManyRequests: 35 - burst, http.StatusForbidden: 34}
	if len(codes) != len(want) || codes[204] != want[204] || codes[429] != want[429] || codes[403] != want[403] {
		t.Errorf("statuses %v, want %v", codes, want)
	}
	if n := count(t, s.metrics.rejected.WithLabelValues("session_rate")); n != float64(35-burst) {
		t.Errorf("%v beacons counted over the session's rate, want %d", n, 35-burst)
	}
	if f := apiQoE(t, s, "demo"); f.Users != 1 || f.Stalled != 1 || f.StallRate != 1 {
		t.Errorf("figures %+v, want one user, stalled", f)
	}
}

// TestNoSessionNoUsers: the beacons of 100 addresses that each make up
// sessions (as pages did before sessions were issued) add no users.
func TestNoSessionNoUsers(t *testing.T) {
	s := testServer(t, Config{})
	refused := 0
	for i := range 100 {
		addr := net.IPv4(198, 51, 100, byte(i)).String()
		for j := range 50 {
			session := fmt.Sprintf("viewer-%03d-%03d-xxxxxxxxxx", i, j)
			if w := postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+session+`","event":"stall"}`); w.Code == http.StatusForbidden {
				refused++
			}
		}
	}
	if refused != 5000 {
		t.Errorf("%d of 5000 beacons refused", refused)
	}
	if f := apiQoE(t, s, "demo"); f.Users != 0 || f.Stalled != 0 || f.Viewers != 0 {
		t.Errorf("figures %+v, want no users", f)
	}
}

// TestSessionBeaconRate: a session sends at most SessionBeaconBurst beacons
// at once; other sessions from the same address are not held back.
func TestSessionBeaconRate(t *testing.T) {
	for _, burst := range []int{3, 10} {
		t.Run(strconv.Itoa(burst), func(t *testing.T) {
			s := testServer(t, Config{SessionBeaconBurst: burst})
			const addr = "192.0.2.1"
			a, b := newSession(t, s, addr, "demo"), newSession(t, s, addr, "demo")
			beacon := func(tok string) int {
				return postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+tok+`","event":"heartbeat"}`).Code
			}
			for i := range burst {
				if code := beacon(a); code != http.StatusNoContent {
					t.Fatalf("beacon %d: %d", i, code)
				}
			}
			if code := beacon(a); code != http.StatusTooManyRequests {
				t.Errorf("beacon %d of a burst of %d: %d, want 429", burst+1, burst, code)
			}
			if code := beacon(b); code != http.StatusNoContent {
				t.Errorf("another session: %d", code)
			}
			if f := apiQoE(t, s, "demo"); f.Users != 2 {
				t.Errorf("%d users, want 2", f.Users)
			}
		})
	}
}

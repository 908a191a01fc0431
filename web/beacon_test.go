package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/origin"
)

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
	{"short session", `{"stream":"demo","session":"abc","event":"stall"}`, false},
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
	streams := []origin.StreamInfo{{Name: "demo", Live: true}, {Name: "over", Live: false}}
	s, err := New(Config{
		Streams:     func(context.Context) ([]origin.StreamInfo, error) { return streams, nil },
		BeaconRate:  1,
		BeaconBurst: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string) int {
		r := httptest.NewRequest(http.MethodPost, "/api/qoe", strings.NewReader(body))
		r.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	if code := post(`{"stream":"demo","session":"` + sess + `","event":"start","first_frame_ms":900}`); code != http.StatusNoContent {
		t.Errorf("valid beacon: %d", code)
	}
	if code := post(`{"stream":"demo","session":"` + sess + `","event":"stall","stall_ms":2000}`); code != http.StatusNoContent {
		t.Errorf("valid stall: %d", code)
	}
	if code := post(`{"stream":"nope","session":"` + sess + `","event":"stall"}`); code != http.StatusNotFound {
		t.Errorf("unknown stream: %d, want 404", code)
	}
	if code := post(`{"stream":"over","session":"` + sess + `","event":"stall"}`); code != http.StatusNotFound {
		t.Errorf("ended stream: %d, want 404", code)
	}
	if code := post(`{"pad":"` + strings.Repeat("x", 4096) + `"}`); code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge beacon: %d, want 413", code)
	}
	if code := post(`{}`); code != http.StatusTooManyRequests {
		t.Errorf("sixth beacon in a burst of 5: %d, want 429", code)
	}
	f := s.qoe.figures("demo", time.Now())
	if f.Users != 1 || f.Stalled != 1 || f.StallRate != 1 || f.FirstFrameP50 != 900 {
		t.Errorf("figures %+v, want 1 user, 1 stalled, first frame 900 ms", f)
	}
}

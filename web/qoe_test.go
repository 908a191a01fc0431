package web

import (
	"testing"
	"time"
)

// testID is a session id made from n.
func testID(n int) sessionID {
	var id sessionID
	id[0], id[1] = byte(n>>8), byte(n)
	return id
}

// TestQoEFigures replays hand-made timelines of beacons and checks the
// one-minute figures at given instants.
func TestQoEFigures(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ff := func(v float64) *float64 { return &v }
	type ev struct {
		at      time.Duration
		session int
		event   string
	}
	for _, tc := range []struct {
		name   string
		events []ev
		at     time.Duration
		want   QoE
	}{
		{"nobody", nil, 0, QoE{}},
		{"one viewer, no stall", []ev{{0, 1, "start"}, {10 * time.Second, 1, "heartbeat"}}, 20 * time.Second,
			QoE{Users: 1, ZeroStallRate: 1, Viewers: 1, FirstFrameP50: 1000, FirstFrameP90: 1000}},
		{"one of four stalled", []ev{{0, 1, "start"}, {0, 2, "start"}, {0, 3, "start"}, {0, 4, "start"}, {5 * time.Second, 2, "stall"}},
			10 * time.Second, QoE{Users: 4, Stalled: 1, StallRate: 0.25, ZeroStallRate: 0.75, Viewers: 4, FirstFrameP50: 1000, FirstFrameP90: 1000}},
		{"a stall leaves the minute", []ev{{0, 1, "stall"}, {50 * time.Second, 1, "heartbeat"}}, 70 * time.Second,
			QoE{Users: 1, ZeroStallRate: 1, Viewers: 1}},
		{"a silent session leaves", []ev{{0, 1, "heartbeat"}, {0, 2, "heartbeat"}, {45 * time.Second, 2, "heartbeat"}}, 65 * time.Second,
			QoE{Users: 1, ZeroStallRate: 1, Viewers: 1}},
		{"two stalls, one user", []ev{{0, 1, "stall"}, {5 * time.Second, 1, "stall"}, {5 * time.Second, 2, "heartbeat"}}, 6 * time.Second,
			QoE{Users: 2, Stalled: 1, StallRate: 0.5, ZeroStallRate: 0.5, Viewers: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQoEStore(qoeLimits{maxSessions: 10, perMinute: 30, burst: 10})
			for _, e := range tc.events {
				b := &beacon{Stream: "s", Event: e.event}
				if e.event == "start" {
					b.FirstFrameMS = ff(1000)
				}
				if got := q.record("s", testID(e.session), b, t0.Add(e.at)); got != recorded {
					t.Fatalf("beacon %+v: %v", e, got)
				}
			}
			if got := q.figures("s", t0.Add(tc.at)); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestQoELimits: a session's beacons beyond its rate, and new sessions
// beyond the store's bound, are refused; each comes back with time.
func TestQoELimits(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	type ev struct {
		at      time.Duration
		session int
		n       int // beacons sent at once
		want    recordResult
	}
	for _, tc := range []struct {
		name      string
		events    []ev
		wantUsers int
	}{
		{"a burst of 10, then none", []ev{{0, 1, 10, recorded}, {0, 1, 1, refusedRate}}, 1},
		{"69 stalls are one user", []ev{{0, 1, 10, recorded}, {0, 1, 59, refusedRate}}, 1},
		{"refilled at 30 a minute", []ev{{0, 1, 10, recorded}, {2 * time.Second, 1, 1, recorded}, {2 * time.Second, 1, 1, refusedRate}}, 1},
		{"one session's rate is not another's", []ev{{0, 1, 10, recorded}, {0, 2, 10, recorded}, {0, 2, 1, refusedRate}}, 2},
		{"a full store refuses new sessions", []ev{{0, 1, 1, recorded}, {0, 2, 1, recorded}, {0, 3, 1, recorded}, {time.Second, 4, 1, refusedFull}, {time.Second, 1, 1, recorded}}, 3},
		{"room again once sessions are silent", []ev{{0, 1, 1, recorded}, {0, 2, 1, recorded}, {30 * time.Second, 3, 1, recorded}, {61 * time.Second, 4, 1, recorded}, {61 * time.Second, 5, 1, recorded}, {61 * time.Second, 6, 1, refusedFull}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQoEStore(qoeLimits{maxSessions: 3, perMinute: 30, burst: 10})
			var last time.Duration
			for _, e := range tc.events {
				for i := range e.n {
					if got := q.record("s", testID(e.session), &beacon{Stream: "s", Event: "stall"}, t0.Add(e.at)); got != e.want {
						t.Fatalf("session %d at %v, beacon %d: %v, want %v", e.session, e.at, i, got, e.want)
					}
				}
				last = e.at
			}
			if f := q.figures("s", t0.Add(last)); f.Users != tc.wantUsers || f.Stalled != tc.wantUsers {
				t.Errorf("figures %+v, want %d users, all stalled", f, tc.wantUsers)
			}
		})
	}
}

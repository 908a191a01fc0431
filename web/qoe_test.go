package web

import (
	"strconv"
	"testing"
	"time"
)

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
			q := newQoEStore()
			for _, e := range tc.events {
				b := &beacon{Stream: "s", Session: "session-" + strconv.Itoa(e.session) + "-xxxxxxxx", Event: e.event}
				if e.event == "start" {
					b.FirstFrameMS = ff(1000)
				}
				q.record(b, t0.Add(e.at))
			}
			if got := q.figures("s", t0.Add(tc.at)); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

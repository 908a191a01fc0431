package loadtest

import (
	"testing"
	"time"
)

// event is one step of a hand-made timeline: a segment of media d fully
// read at at (d > 0), or the clock advancing to at (d == 0).
type event struct {
	at, d time.Duration
}

func TestPlaybackStalls(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	tests := []struct {
		name     string
		events   []event
		finish   time.Duration // 0: no finish
		stalls   int
		times    []time.Duration // when stalls are counted
		rebuffer time.Duration
		spells   int // checked when not 0
	}{
		{
			name:   "start-up wait is not a stall",
			events: []event{{1 * s, 0}, {5 * s, 0}, {9 * s, 1 * s}, {10 * s, 1 * s}},
		},
		{
			name:     "1.9 s empty is not a stall",
			events:   []event{{0, 1 * s}, {2900 * ms, 1 * s}},
			rebuffer: 1900 * ms,
		},
		{
			name:     "2.0 s empty is a stall",
			events:   []event{{0, 1 * s}, {3 * s, 1 * s}},
			stalls:   1,
			times:    []time.Duration{3 * s},
			rebuffer: 2 * s,
		},
		{
			name:     "one long stall counts once",
			events:   []event{{0, 1 * s}, {3 * s, 0}, {5 * s, 0}, {8 * s, 0}, {10 * s, 1 * s}},
			stalls:   1,
			times:    []time.Duration{3 * s},
			rebuffer: 9 * s,
		},
		{
			name: "two empty spells, two stalls",
			events: []event{{0, 1 * s}, {4 * s, 2 * s}, // empty 1..4
				{9 * s, 1 * s}}, // empty 6..9
			stalls:   2,
			times:    []time.Duration{3 * s, 8 * s},
			rebuffer: 6 * s,
		},
		{
			name:   "segments just in time never stall",
			events: []event{{0, 1 * s}, {1 * s, 1 * s}, {2 * s, 1 * s}, {3 * s, 1 * s}, {4 * s, 1 * s}},
		},
		{
			name:   "a buffer ahead covers a late segment",
			events: []event{{0, 3 * s}, {2500 * ms, 1 * s}, {3 * s, 1 * s}},
		},
		{
			name:     "a stall still running at the end is counted",
			events:   []event{{0, 1 * s}},
			finish:   4 * s,
			stalls:   1,
			times:    []time.Duration{3 * s},
			rebuffer: 3 * s,
		},
		{
			name:     "an empty spell shorter than the threshold at the end is rebuffering only",
			events:   []event{{0, 1 * s}},
			finish:   2500 * ms,
			rebuffer: 1500 * ms,
		},
		{
			name:   "time going backwards is ignored",
			events: []event{{0, 1 * s}, {5 * s, 0}, {4 * s, 0}, {6 * s, 1 * s}},
			stalls: 1, times: []time.Duration{3 * s}, rebuffer: 5 * s,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pb playback
			stalls := 0
			for _, e := range tt.events {
				if e.d > 0 {
					n, _ := pb.arrive(e.at, e.d)
					stalls += n
				} else {
					stalls += pb.advance(e.at)
				}
			}
			if tt.finish > 0 {
				stalls += pb.finish(tt.finish)
			}
			if stalls != tt.stalls || pb.stalls != tt.stalls {
				t.Errorf("stalls: returned %d, kept %d, want %d", stalls, pb.stalls, tt.stalls)
			}
			if len(pb.stallTimes) != len(tt.times) {
				t.Fatalf("stall times %v, want %v", pb.stallTimes, tt.times)
			}
			for i := range tt.times {
				if pb.stallTimes[i] != tt.times[i] {
					t.Errorf("stall times %v, want %v", pb.stallTimes, tt.times)
				}
			}
			if got := pb.rebuffered(); got != tt.rebuffer {
				t.Errorf("rebuffer %v, want %v", got, tt.rebuffer)
			}
			if tt.spells != 0 && pb.spells != tt.spells {
				t.Errorf("%d empty spells, want %d", pb.spells, tt.spells)
			}
			if (pb.spells == 0) != (tt.rebuffer == 0) || pb.spells < tt.stalls {
				t.Errorf("%d empty spells for %v rebuffering and %d stalls", pb.spells, tt.rebuffer, tt.stalls)
			}
		})
	}
}

func TestPlaybackStartAndThreshold(t *testing.T) {
	var pb playback
	if _, first := pb.arrive(2*time.Second, time.Second); !first {
		t.Error("first segment did not start playback")
	}
	if pb.startedAt != 2*time.Second {
		t.Errorf("started at %v", pb.startedAt)
	}
	if _, first := pb.arrive(3*time.Second, time.Second); first {
		t.Error("second segment started playback again")
	}
	if StallThreshold != 2*time.Second {
		t.Errorf("StallThreshold is %v; the QoE beacons count 2 s", StallThreshold)
	}
	short := playback{threshold: 500 * time.Millisecond}
	short.arrive(0, time.Second)
	if short.advance(1500*time.Millisecond) != 1 {
		t.Error("a 500 ms threshold did not count a 500 ms empty spell")
	}
}

// TestOneMinute checks the one-minute figures against web/qoe.go's
// definition: users are sessions seen in the last minute, stalled users
// those with a stall in it, the rate their quotient.
func TestOneMinute(t *testing.T) {
	s := time.Second
	spans := []viewerSpan{
		{start: 0, end: 120 * s, stalls: []time.Duration{30 * s}},       // A
		{start: 0, end: 120 * s},                                        // B
		{start: 100 * s, end: 120 * s},                                  // C
		{start: 0, end: 10 * s, stalls: []time.Duration{5 * s, 7 * s}},  // D, left early
		{start: 50 * s, end: 120 * s, stalls: []time.Duration{119 * s}}, // E
	}
	tests := []struct {
		at                     time.Duration
		users, stalled, stalls int
	}{
		{at: 10 * s, users: 3, stalled: 1, stalls: 2},  // A B D
		{at: 60 * s, users: 4, stalled: 2, stalls: 3},  // A B D E; A and D stalled
		{at: 80 * s, users: 3, stalled: 1, stalls: 1},  // A B E; D left 70 s ago
		{at: 90 * s, users: 3, stalled: 0, stalls: 0},  // A's stall at 30 s is out of (30, 90]
		{at: 120 * s, users: 4, stalled: 1, stalls: 1}, // A B C E
		{at: 200 * s, users: 0},
	}
	for _, tt := range tests {
		users, stalled, stalls := oneMinute(spans, tt.at)
		if users != tt.users || stalled != tt.stalled || stalls != tt.stalls {
			t.Errorf("at %v: users %d stalled %d stalls %d, want %d %d %d", tt.at, users, stalled, stalls, tt.users, tt.stalled, tt.stalls)
		}
	}
}

// TestReportByCrowd: the stall figures of the players that started before
// the crowd and of those that came with it (#20), and players by kind.
func TestReportByCrowd(t *testing.T) {
	s := time.Second
	start := time.Now()
	r := &run{Generator: &Generator{cfg: Config{Schedule: Flash(3, 20*s, 10*s, 3)}}, rec: newRecorder(start, 60*s)}
	for _, sp := range []viewerSpan{
		{start: 0, end: 60 * s, stalls: []time.Duration{25 * s, 40 * s}, kind: kindHLS, played: true},
		{start: 0, end: 60 * s, kind: kindLLHLS, played: true},
		{start: 19900 * time.Millisecond, end: 60 * s, kind: kindDASH, played: true},
		{start: 20 * s, end: 60 * s, stalls: []time.Duration{30 * s}, kind: kindHLS, played: true},
		{start: 25 * s, end: 60 * s, stalls: []time.Duration{31 * s}, kind: kindLLDASH, played: true},
		{start: 28 * s, end: 60 * s, kind: kindHLS, played: true},
		{start: 29 * s, end: 60 * s, kind: kindHLS}, // never played
	} {
		r.rec.spans = append(r.rec.spans, sp)
	}
	rep := r.report(start, start.Add(60*s), nil, nil)
	if rep.CrowdAt == nil || *rep.CrowdAt != 20 {
		t.Fatalf("crowd at %v, want 20 s", rep.CrowdAt)
	}
	if b := *rep.BeforeCrowd; b != (Cohort{Players: 3, Stalls: 2, StalledPlayers: 1, StallRate: 1.0 / 3}) {
		t.Errorf("before the crowd %+v", b)
	}
	if w := *rep.WithCrowd; w != (Cohort{Players: 4, Stalls: 2, StalledPlayers: 2, StallRate: 2.0 / 3}) {
		t.Errorf("with the crowd %+v", w)
	}
	if k := rep.PlayersByKind; k["hls"] != 4 || k["ll-hls"] != 1 || k["dash"] != 1 || k["ll-dash"] != 1 {
		t.Errorf("players by kind %v", k)
	}
	steady := &run{Generator: &Generator{cfg: Config{Schedule: Steady(3)}}, rec: newRecorder(start, 60*s)}
	if rep := steady.report(start, start.Add(60*s), nil, nil); rep.CrowdAt != nil || rep.BeforeCrowd != nil {
		t.Errorf("no crowd, yet %v %+v", rep.CrowdAt, rep.BeforeCrowd)
	}
}

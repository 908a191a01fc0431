package origin

import (
	"testing"
	"time"
)

// TestContinuesPeriodStart: the Period of an instance that continues
// another begins where the other's media ends when the new media began,
// on the wall clock, up to periodJitter after that end (or before it),
// so that the MPD timeline has no gap for players to jump; else where its
// media began on the wall clock.
func TestContinuesPeriodStart(t *testing.T) {
	_, snap, _ := fixture(time.Minute, false)
	end := snap.end() // 10.692 s
	for _, tc := range []struct {
		name  string
		began time.Duration // the new media's start on the wall clock, after old's
		want  time.Duration
	}{
		{"media ran ahead of the wall clock", end - 2*time.Second, end},
		{"jitter", end + 57*time.Millisecond, end},
		{"jitter, at most", end + periodJitter - time.Millisecond, end},
		{"a gap", end + periodJitter, end + periodJitter},
		{"a publisher back after 5 s", end + 5*time.Second, end + 5*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, snap, _ := fixture(time.Minute, false)
			snap.changed = make(chan struct{})
			old.snap.Store(snap)
			cur, curSnap, _ := fixture(time.Minute, false)
			curSnap.changed = make(chan struct{})
			cur.snap.Store(curSnap)
			cur.ast = old.ast.Add(tc.began)
			cur.continues(old)
			if cur.start != tc.want || cur.pres != old.pres {
				t.Errorf("Period@start %v (presentation from %v), want %v (from %v)", cur.start, cur.pres, tc.want, old.pres)
			}
		})
	}
}

package main

import (
	"context"
	"testing"
	"time"

	"github.com/golivestream/live/loadtest"
)

// TestFleetEtcdFaults: the fleet's directory is a 3-member etcd cluster,
// and it fails while 60 players (half DASH) watch through the PoP: its
// leader is stopped, then a second member (no quorum), then the third
// (etcd unreachable), then all three start again. The stream plays on
// throughout without a stall or an error: the origins go on ingesting
// and the PoPs fetching from the origins they knew (fail static), and
// both say so in their logs; with etcd back, the origins register again
// and the PoPs follow the directory again.
func TestFleetEtcdFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("plays for 50 s")
	}
	f := startFleet(t, fleetConfig{members: 3, seconds: 90})
	g, err := loadtest.New(loadtest.Config{
		Targets: f.popURLs, Streams: []string{fleetStream}, Schedule: loadtest.Steady(60),
		Duration: 50 * time.Second, DASHShare: 0.5,
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep *loadtest.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := g.Run(context.Background())
		done <- result{rep, err}
	}()
	// Each phase lasts a while: playing through it is what is tested.
	phase := func(what string, d time.Duration) {
		t.Helper()
		t.Log(what)
		select {
		case <-time.After(d):
		case r := <-done:
			t.Fatalf("the players stopped during %q: %v", what, r.err)
		}
	}
	phase("players start", 5*time.Second)

	leader := f.etcd.Leader()
	if leader < 0 {
		t.Fatal("etcd has no leader")
	}
	f.etcd.Stop(leader)
	phase("etcd lost its leader", 8*time.Second)

	var others []int
	for i := range 3 {
		if i != leader {
			others = append(others, i)
		}
	}
	f.etcd.Stop(others[0])
	for _, p := range f.pops {
		p.Await(t, "directory view: etcd unreachable; serving the last view")
	}
	for _, o := range f.origins {
		o.p.Await(t, "directory: not registered; retrying")
	}
	phase("etcd lost its quorum", 5*time.Second)

	f.etcd.Stop(others[1])
	phase("etcd is down", 8*time.Second)

	f.etcd.StartAgain(0, 1, 2)
	for _, o := range f.origins {
		o.p.Await(t, "directory: registered again")
	}
	for _, p := range f.pops {
		p.Await(t, "directory view: current again")
	}
	t.Log("etcd is back")

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	rep := r.rep
	t.Logf("players: %d, stalls %d, errors %v, segment p99 %.0f ms", rep.Players, rep.Stalls, rep.Errors, rep.Classes["segment"].Latency.P99)
	if rep.Stalls != 0 || rep.ErrorCount != 0 || rep.NeverStarted != 0 {
		t.Errorf("through etcd's faults: %d stalls, %d errors (%v), %d never started", rep.Stalls, rep.ErrorCount, rep.Errors, rep.NeverStarted)
	}
	// The directory lists the stream on both origins again.
	timeout := time.After(20 * time.Second)
	for {
		changed := f.view.Changed()
		p, b, ok := f.view.Lookup(fleetStream)
		if ok && p.ID == f.primary.ID && b.ID == f.backup.ID {
			break
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the directory lists %s on %q and %q, want %s and %s", fleetStream, p.ID, b.ID, f.primary.ID, f.backup.ID)
		}
	}
}

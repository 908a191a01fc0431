package main

import (
	"testing"
	"time"

	"github.com/golivestream/live/directory"
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
	// Each phase lasts a while: playing through it is what is tested.
	phase := func(what string, d time.Duration) {
		t.Log(what)
		<-time.After(d)
	}
	f.play(t, 60, 50*time.Second, func() {
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
	})
	// The directory lists the stream on both origins again.
	f.awaitRoute(t, func(r directory.Route) bool { return r.Primary.ID == f.primary.ID && r.Backup.ID == f.backup.ID })
}

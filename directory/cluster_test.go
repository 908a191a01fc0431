package directory

import (
	"errors"
	"testing"
	"time"

	"github.com/golivestream/live/directory/etcdtest"
)

// A 3-member cluster losing one member, its leader, keeps registrations
// and views working.
func TestClusterMemberLoss(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{Members: 3})
	a := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "a", Zone: "z1"})
	v := runView(t, ViewConfig{Client: etcd.Client(), ProgressInterval: time.Second})
	mustSet(t, a, "s1", StreamState{Epoch: "e1", Role: RolePrimary})
	awaitView(t, v, "listed s1", routeIs("s1", "a", ""))

	leader := etcd.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	etcd.Stop(leader)
	t.Logf("stopped member %d, the leader", leader)

	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", Zone: "z2"})
	mustSet(t, a, "s2", StreamState{Epoch: "e2", Role: RolePrimary})
	mustSet(t, b, "s2", StreamState{Epoch: "e2", Role: RoleBackup})
	awaitView(t, v, "listed s2 on a and b", routeIs("s2", "a", "b"))
	awaitView(t, v, "kept s1", routeIs("s1", "a", ""))
	awaitHealth(t, v, true)
	if p, err := v.Place("s3"); err != nil || p.Primary.ID == "" {
		t.Errorf("Place: %+v, %v", p, err)
	}
	if st, _ := a.Status(); !st.Registered || st.LeaseLosses != 0 {
		t.Errorf("a: %+v", st)
	}
}

// A 3-member cluster losing two members has no quorum: the view keeps
// its last state (fail static) and makes no new placements, the
// registration loses its lease and keeps trying; with the quorum back
// everything resyncs.
func TestClusterQuorumLoss(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{Members: 3})
	const ttl = 2 * time.Second
	a := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "a", Zone: "z1", TTL: ttl})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", Zone: "z2", TTL: ttl})
	v := runView(t, ViewConfig{Client: etcd.Client(), ProgressInterval: time.Second})
	mustSet(t, a, "s1", StreamState{Epoch: "e1", Role: RolePrimary})
	mustSet(t, b, "s1", StreamState{Epoch: "e1", Role: RoleBackup})
	awaitView(t, v, "listed s1", routeIs("s1", "a", "b"))

	etcd.Stop(1)
	etcd.Stop(2)
	lost := time.Now()
	h := awaitHealth(t, v, false)
	t.Logf("view stale %v after the quorum was lost: %v", time.Since(lost).Round(time.Millisecond), h.Err)
	if p, bk, ok := v.Lookup("s1"); !ok || p.ID != "a" || bk.ID != "b" {
		t.Errorf("fail static: s1 on %q, %q (%v)", p.ID, bk.ID, ok)
	}
	if _, err := v.Place("new"); !errors.Is(err, ErrStale) {
		t.Errorf("placed a new stream without etcd: %v", err)
	}
	if p, err := v.Place("s1"); err != nil || !p.Live || p.Primary.ID != "a" {
		t.Errorf("live stream not answered: %+v, %v", p, err)
	}
	if v.Staleness() <= 0 {
		t.Error("no staleness")
	}

	st := awaitRegistration(t, a, "lost its lease", func(s Status) bool { return s.LeaseLosses > 0 && !s.Registered })
	t.Logf("registration lost its lease %v after the quorum: %v", time.Since(lost).Round(time.Millisecond), st.Err)
	failures := st.Failures
	awaitRegistration(t, a, "tried again twice", func(s Status) bool { return s.Failures >= failures+2 })
	// Changes go on locally meanwhile.
	mustSet(t, a, "s2", StreamState{Epoch: "e2", Role: RolePrimary})
	b.RemoveStream("s1")

	etcd.StartAgain(1, 2)
	back := time.Now()
	awaitRegistration(t, a, "registered again", func(s Status) bool { return s.Registered && s.Err == nil })
	awaitHealth(t, v, true)
	awaitView(t, v, "listed s2", routeIs("s2", "a", ""))
	awaitView(t, v, "dropped b from s1", routeIs("s1", "a", ""))
	awaitView(t, v, "listed a and b", hasOrigins("a", "b"))
	t.Logf("resynced %v after the quorum was back", time.Since(back).Round(time.Millisecond))
	if _, err := v.Place("new"); err != nil {
		t.Errorf("no placement with the quorum back: %v", err)
	}
}

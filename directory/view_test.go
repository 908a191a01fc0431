package directory

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/directory/etcdtest"
)

// A view cut off from etcd keeps its last state (fail static); when it
// reaches etcd again, behind a compaction of what it missed, it loads
// the directory again.
func TestViewPartitionAndCompaction(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	proxy := etcd.NewProxy(0)
	cli := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: cli, ID: "a"})
	reg := prometheus.NewRegistry()
	v := runView(t, ViewConfig{Client: etcdtest.NewClient(t, []string{proxy.URL()}), ProgressInterval: 200 * time.Millisecond, Registerer: reg})
	direct := runView(t, ViewConfig{Client: cli})
	mustSet(t, a, "s1", StreamState{Epoch: "e1", Role: RolePrimary})
	awaitView(t, v, "listed s1", routeIs("s1", "a", ""))

	proxy.Cut()
	awaitHealth(t, v, false)
	mustSet(t, a, "s2", StreamState{Epoch: "e2", Role: RolePrimary})
	a.RemoveStream("s1")
	awaitView(t, direct, "listed s2", routeIs("s2", "a", ""))
	awaitView(t, direct, "dropped s1", routeIs("s1", "", ""))
	if _, _, ok := v.Lookup("s1"); !ok {
		t.Error("fail static: s1 dropped while cut off")
	}
	if got, _ := gathered(t, reg, "directory_view_staleness_seconds"); got <= 0 {
		t.Errorf("staleness %v while cut off", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}

	proxy.Restore()
	awaitHealth(t, v, true)
	awaitView(t, v, "listed s2", routeIs("s2", "a", ""))
	awaitView(t, v, "dropped s1", routeIs("s1", "", ""))
	if n, _ := gathered(t, reg, "directory_view_watch_restarts_total"); n < 1 {
		t.Errorf("%v watch restarts", n)
	}
	if n, _ := gathered(t, reg, "directory_origins"); n != 1 {
		t.Errorf("%v origins", n)
	}
	if n, samples := gathered(t, reg, "directory_origin_streams"); n != 1 || samples != 1 {
		t.Errorf("%v streams on %d origins", n, samples)
	}
}

// A view counts the failovers it sees, whichever way the primary goes:
// its origin dies (lease), or it stops listing the stream while the
// backup goes on; not a stream that ends, nor one without a backup.
func TestViewCountsFailovers(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	dying := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: dying, ID: "a", Zone: "z1", TTL: 2 * time.Second})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", Zone: "z2"})
	reg := prometheus.NewRegistry()
	v := runView(t, ViewConfig{Client: etcd.Client(), Registerer: reg})
	for _, s := range []string{"s1", "s2", "s3"} {
		mustSet(t, a, s, StreamState{Epoch: "e1", Role: RolePrimary})
		mustSet(t, b, s, StreamState{Epoch: "e1", Role: RoleBackup})
	}
	mustSet(t, a, "alone", StreamState{Epoch: "e1", Role: RolePrimary})
	mustSet(t, b, "ending", StreamState{Epoch: "e1", Role: RolePrimary})
	awaitView(t, v, "listed s3 on a and b", routeIs("s3", "a", "b"))
	awaitView(t, v, "listed ending", routeIs("ending", "b", ""))
	if n, _ := gathered(t, reg, "directory_origin_primaries"); n != 5 {
		t.Errorf("%v primaries", n)
	}

	a.RemoveStream("s1") // its publisher left a alone
	b.RemoveStream("ending")
	awaitView(t, v, "s1 on b", routeIs("s1", "b", ""))
	awaitView(t, v, "ending gone", routeIs("ending", "", ""))
	if n := v.Snapshot().Failovers(); n != 1 {
		t.Errorf("%d failovers after s1 went from a, want 1", n)
	}
	dying.Close() // a dies, with s2, s3 and alone
	awaitView(t, v, "dropped a", hasOrigins("b"))
	if n := v.Snapshot().Failovers(); n != 3 {
		t.Errorf("%d failovers after a died, want 3", n)
	}
	if n, _ := gathered(t, reg, "directory_failovers_total"); n != 3 {
		t.Errorf("directory_failovers_total %v, want 3", n)
	}
	// b's reported load lags: at least the 3 streams listed on it.
	if n, samples := gathered(t, reg, "directory_origin_load"); n < 3 || samples != 1 {
		t.Errorf("directory_origin_load %v over %d origins, want 3 streams or more on b", n, samples)
	}
}

// gathered returns the sum of the samples of reg's metric name, gauges
// or counters, and their number.
func gathered(t *testing.T, reg *prometheus.Registry, name string) (float64, int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.Metric {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return sum, len(mf.Metric)
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// An origin killed and started again before its lease expired comes
// back with a record under a new lease while its earlier process's
// stream records linger under the old one: those are passed over (the
// new process has none of those streams), and the stream goes to its
// backup at once, not when the old lease expires.
func TestViewPassesOverAnEarlierProcess(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	killed := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: killed, ID: "a", Zone: "z1", TTL: time.Minute})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", Zone: "z2"})
	v := runView(t, ViewConfig{Client: etcd.Client()})
	mustSet(t, a, "s1", StreamState{Epoch: "e1", Role: RolePrimary})
	mustSet(t, b, "s1", StreamState{Epoch: "e1", Role: RoleBackup})
	awaitView(t, v, "s1 on a and b", routeIs("s1", "a", "b"))

	killed.Close() // its lease outlives it by a minute
	runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "a", Zone: "z1"})
	awaitView(t, v, "s1 on b alone", routeIs("s1", "b", ""))
	if o := v.Snapshot().Origins(); len(o) != 2 {
		t.Errorf("origins %+v, want a and b", o)
	}
}

package directory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory/etcdtest"
)

// appliedLists records what a Revocations applies, and wakes those
// awaiting a list.
type appliedLists struct {
	mu     sync.Mutex // protects the fields below
	set    map[string]bool
	ids    []string // the set, sorted
	calls  int
	resets int
	wrong  []string      // changes that did not fit the list they changed
	ch     chan struct{} // closed and replaced at each call
}

func newAppliedLists() *appliedLists { return &appliedLists{ch: make(chan struct{})} }

func (a *appliedLists) apply(c RevocationChange) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Reset {
		a.set = map[string]bool{}
		a.resets++
	}
	if a.set == nil {
		a.wrong = append(a.wrong, fmt.Sprintf("a first change without Reset: %+v", c))
		a.set = map[string]bool{}
	}
	for _, id := range c.Added {
		if a.set[id] {
			a.wrong = append(a.wrong, "added twice: "+id)
		}
		a.set[id] = true
	}
	for _, id := range c.Removed {
		if !a.set[id] || slices.Contains(c.Added, id) {
			a.wrong = append(a.wrong, "removed, not there: "+id)
		}
		delete(a.set, id)
	}
	a.ids = slices.Sorted(maps.Keys(a.set))
	a.calls++
	close(a.ch)
	a.ch = make(chan struct{})
}

func (a *appliedLists) last() ([]string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids, a.calls
}

// await waits until the last list applied is want (sorted), and returns
// how long it took.
func (a *appliedLists) await(t *testing.T, want ...string) time.Duration {
	t.Helper()
	began := time.Now()
	timeout := time.After(awaitTimeout)
	for {
		a.mu.Lock()
		ids, calls, ch := a.ids, a.calls, a.ch
		a.mu.Unlock()
		if calls > 0 && slices.Equal(ids, want) {
			return time.Since(began)
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("revocations: never applied %q (last %q)", want, ids)
		}
	}
}

// runRevocations starts cfg's Revocations, applying to a new
// appliedLists, waits until it has loaded the list, and stops it when
// the test ends.
func runRevocations(t *testing.T, cfg RevocationsConfig) (*Revocations, *appliedLists) {
	t.Helper()
	applied := newAppliedLists()
	cfg.Apply = applied.apply
	r, err := NewRevocations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after Run returned: cleanups run last first
		applied.mu.Lock()
		defer applied.mu.Unlock()
		for _, w := range applied.wrong {
			t.Error(w)
		}
	})
	runUntilCleanup(t, "revocations", r.Run)
	select {
	case <-r.Ready():
	case <-time.After(awaitTimeout):
		t.Fatal("revocations not loaded")
	}
	return r, applied
}

func mustRevoke(t *testing.T, cli *clientv3.Client, id string, ttl time.Duration, reason string) Revocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	rec, err := Revoke(ctx, cli, "", id, ttl, reason)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func mustUnrevoke(t *testing.T, cli *clientv3.Client, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	ok, err := Unrevoke(ctx, cli, "", id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A revocation reaches a PoP's list at once, and so does its end; cut
// off from etcd, the list stays in force, and it catches up on what it
// missed when etcd is back, behind a compaction too; a Revocations
// started anew reads the whole list before it is ready.
func TestRevocationsFollow(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	proxy := etcd.NewProxy(0)
	cli := etcd.Client()
	rec := mustRevoke(t, cli, "s1", 24*time.Hour, "shared on a forum")

	// The record: a key under a lease of its own, of the ttl.
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, DefaultPrefix+"revoked/s1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("revoked/s1: %v, %v", resp, err)
	}
	stored, err := decode[Revocation](resp.Kvs[0].Value)
	if err != nil || stored.Reason != "shared on a forum" || !stored.Expires.Equal(rec.Expires) || stored.Expires.Sub(stored.Revoked) != 24*time.Hour {
		t.Errorf("stored %+v (%v), returned %+v", stored, err, rec)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease), clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 24*3600 || len(ttl.Keys) != 1 {
		t.Errorf("lease: %+v, %v", ttl, err)
	}

	reg := prometheus.NewRegistry()
	r, applied := runRevocations(t, RevocationsConfig{
		Client: etcdtest.NewClient(t, []string{proxy.URL()}), ProgressInterval: 200 * time.Millisecond, Registerer: reg,
	})
	if ids, _ := applied.last(); !slices.Equal(ids, []string{"s1"}) || r.Len() != 1 {
		t.Fatalf("ready with %q (Len %d), want s1", ids, r.Len())
	}
	mustRevoke(t, cli, "s2", time.Hour, "")
	t.Logf("a revocation applied %v after it was written", applied.await(t, "s1", "s2"))
	if !mustUnrevoke(t, cli, "s1") {
		t.Error("Unrevoke s1: not revoked")
	}
	applied.await(t, "s2")
	if mustUnrevoke(t, cli, "s1") {
		t.Error("Unrevoke s1 twice: revoked")
	}
	if n, _ := gathered(t, reg, "directory_revocations"); n != 1 {
		t.Errorf("directory_revocations %v, want 1", n)
	}

	// Fail static: cut off, the list stays; what changed meanwhile comes
	// when etcd is back, here behind a compaction.
	proxy.Cut()
	awaitRevocationsHealth(t, r, false)
	_, calls := applied.last()
	mustRevoke(t, cli, "s3", time.Hour, "")
	mustUnrevoke(t, cli, "s2")
	if ids, n := applied.last(); n != calls || !slices.Equal(ids, []string{"s2"}) {
		t.Errorf("cut off: applied %q, %d times more", ids, n-calls)
	}
	if s, _ := gathered(t, reg, "directory_revocations_staleness_seconds"); s <= 0 {
		t.Errorf("staleness %v while cut off", s)
	}
	resp, err = cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	applied.await(t, "s3")
	awaitRevocationsHealth(t, r, true)
	if n, _ := gathered(t, reg, "directory_revocations_watch_restarts_total"); n < 1 {
		t.Errorf("%v watch restarts", n)
	}

	// A watcher started anew reads the whole list before it is ready.
	mustRevoke(t, cli, "s4", time.Hour, "")
	applied.await(t, "s3", "s4")
	r2, applied2 := runRevocations(t, RevocationsConfig{Client: etcd.Client()})
	if ids, calls := applied2.last(); !slices.Equal(ids, []string{"s3", "s4"}) || calls != 1 || r2.Len() != 2 {
		t.Errorf("a new watcher is ready with %q after %d calls, Len %d", ids, calls, r2.Len())
	}
}

// With its only member stopped, etcd says nothing at all: the list goes
// stale and stays in force; when etcd is back, the list follows it
// again (on a new watch: the old one may never speak again).
func TestRevocationsEtcdRestart(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	mustRevoke(t, cli, "s1", time.Hour, "")
	r, applied := runRevocations(t, RevocationsConfig{Client: etcdtest.NewClient(t, etcd.Endpoints()), ProgressInterval: 200 * time.Millisecond})
	etcd.Stop(0)
	awaitRevocationsHealth(t, r, false)
	if ids, calls := applied.last(); calls != 1 || !slices.Equal(ids, []string{"s1"}) || r.Len() != 1 {
		t.Errorf("etcd stopped: applied %q, %d times", ids, calls)
	}
	etcd.StartAgain(0)
	awaitRevocationsHealth(t, r, true)
	mustRevoke(t, cli, "s2", time.Hour, "")
	t.Logf("a revocation applied %v after it was written", applied.await(t, "s1", "s2"))
}

// awaitRevocationsHealth waits until r's list is current, or not.
func awaitRevocationsHealth(t *testing.T, r *Revocations, current bool) {
	t.Helper()
	timeout := time.After(awaitTimeout)
	for {
		h, changed := r.Health()
		if h.Current == current {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("revocations: never current=%v (health %+v)", current, h)
		}
	}
}

// A revocation goes when its lease ends.
func TestRevocationExpires(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	_, applied := runRevocations(t, RevocationsConfig{Client: cli})
	rec := mustRevoke(t, cli, "brief", time.Second, "")
	applied.await(t, "brief")
	took := applied.await(t)
	t.Logf("revoked for %v (etcd's minimum TTL), gone after %v", rec.Expires.Sub(rec.Revoked), took)
}

// The list is bounded by MaxSessions; keys that name no session are
// left out too; both are counted.
func TestRevocationsBounded(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	for _, id := range []string{"a", "b", "c"} {
		mustRevoke(t, cli, id, time.Hour, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	long := DefaultPrefix + "revoked/" + strings.Repeat("x", MaxSessionLen+1)
	if _, err := cli.Put(ctx, long, "{}"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, applied := runRevocations(t, RevocationsConfig{Client: cli, MaxSessions: 2, Registerer: reg})
	applied.await(t, "a", "b") // a load reads in key order
	if n, _ := gathered(t, reg, "directory_revocations_ignored"); n != 2 || r.Len() != 2 {
		t.Errorf("ignored %v, held %d; want 2, 2", n, r.Len())
	}
	// Another one is ignored; one that goes is counted out.
	mustRevoke(t, cli, "d", time.Hour, "")
	mustUnrevoke(t, cli, "c")
	if _, err := cli.Delete(ctx, long); err != nil {
		t.Fatal(err)
	}
	mustUnrevoke(t, cli, "a")
	applied.await(t, "b")
	if n, _ := gathered(t, reg, "directory_revocations_ignored"); n != 1 {
		t.Errorf("ignored %v, want 1 (d)", n)
	}
}

// A view reads the keys it uses and no others: a thousand revocations
// do not make its load longer.
func TestViewLoadsNoRevocations(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	for i := 0; i < 2500; i += 100 {
		ops := make([]clientv3.Op, 0, 100)
		for j := i; j < i+100; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%srevoked/u%d", DefaultPrefix, j), "{}"))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	runRegistration(t, RegistrationConfig{Client: cli, ID: "a"})
	count := etcdtest.NewCounter()
	v := runView(t, ViewConfig{Client: etcd.Client(count.DialOptions()...)})
	awaitView(t, v, "listed a", hasOrigins("a"))
	sent, _ := count.Take()
	var ranges []string
	for k, n := range sent {
		if strings.HasSuffix(k, "/Range") {
			ranges = append(ranges, fmt.Sprintf("%s ×%d", k, n))
			if n != 2 {
				t.Errorf("the view's load sent %d reads, want 2 (origins/, streams/)", n)
			}
		}
	}
	if len(ranges) != 1 {
		t.Errorf("reads %v", slices.Sorted(maps.Keys(sent)))
	}
}

func TestRevokeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, id string
		ttl              time.Duration
		reason           string
	}{
		{"no session", "", "", time.Hour, ""},
		{"a session id too long", "", strings.Repeat("x", MaxSessionLen+1), time.Hour, ""},
		{"no ttl", "", "s", 0, ""},
		{"under a second", "", "s", time.Second / 2, ""},
		{"a reason too long", "", "s", time.Hour, strings.Repeat("x", MaxReasonLen+1)},
		{"a prefix without /", "/x", "s", time.Hour, ""},
	} {
		// Checked before any request: no client is needed.
		if _, err := Revoke(context.Background(), nil, tc.prefix, tc.id, tc.ttl, tc.reason); err == nil {
			t.Errorf("%s: revoked", tc.name)
		}
	}
	if _, err := Unrevoke(context.Background(), nil, "", ""); err == nil {
		t.Error("unrevoked no session")
	}
	cli := &clientv3.Client{}
	for _, cfg := range []RevocationsConfig{
		{Apply: func(RevocationChange) {}},
		{Client: cli},
		{Client: cli, Apply: func(RevocationChange) {}, MaxSessions: -1},
		{Client: cli, Apply: func(RevocationChange) {}, Prefix: "x"},
	} {
		if _, err := NewRevocations(cfg); err == nil {
			t.Errorf("NewRevocations(%+v): no error", cfg)
		}
	}
}

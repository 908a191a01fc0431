package directory

import (
	"context"
	"testing"
	"time"

	"github.com/golivestream/live/directory/etcdtest"
)

func TestRegistrationViewRoundTrip(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	load := Load{Streams: 1, IngestBPS: 4e6, TranscodeCPU: 0.5}
	a := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "a", Zone: "z1", Load: func() Load { return load }})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", Zone: "z2"})
	v := runView(t, ViewConfig{Client: etcd.Client()})

	s := awaitView(t, v, "listed a and b", hasOrigins("a", "b"))
	if o := s.Origins()[0]; o.Zone != "z1" || o.PublicURL != "http://a.example:8081" || o.RTMPURL != "rtmp://a.example:1935/live" || o.Load != load {
		t.Errorf("origin a: %+v", o)
	}

	steps := []struct {
		name            string
		do              func()
		stream          string
		primary, backup string
	}{
		{"a primary", func() { mustSet(t, a, "s1", StreamState{Epoch: "k1", Role: RolePrimary, Fingerprint: "f"}) }, "s1", "a", ""},
		{"b backup", func() { mustSet(t, b, "s1", StreamState{Epoch: "k1", Role: RoleBackup, Fingerprint: "f"}) }, "s1", "a", "b"},
		{"a gone: b answers", func() { a.RemoveStream("s1") }, "s1", "b", ""},
		{"a back as backup", func() { mustSet(t, a, "s1", StreamState{Epoch: "k1", Role: RoleBackup, Fingerprint: "f"}) }, "s1", "b", "a"},
		{"b promoted to primary", func() { mustSet(t, b, "s1", StreamState{Epoch: "k1", Role: RolePrimary, Fingerprint: "f"}) }, "s1", "b", "a"},
		{"another stream", func() { mustSet(t, b, "s2", StreamState{Epoch: "k2", Role: RolePrimary}) }, "s2", "b", ""},
		{"no role: not served", func() { mustSet(t, a, "s3", StreamState{Epoch: "k3"}) }, "s3", "", ""},
		{"all gone", func() { a.RemoveStream("s1"); b.RemoveStream("s1") }, "s1", "", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			awaitView(t, v, st.name, routeIs(st.stream, st.primary, st.backup))
		})
	}
	if r, ok := v.Snapshot().Route("s2"); !ok || r.Epoch != "k2" || r.Primary.Serving != 1 || r.Primary.Primaries != 1 {
		t.Errorf("route of s2: %+v", r)
	}
	if h, _ := v.Health(); !h.Current || v.Staleness() != 0 {
		t.Errorf("health %+v, staleness %v", h, v.Staleness())
	}
}

func mustSet(t *testing.T, r *Registration, name string, st StreamState) {
	t.Helper()
	if err := r.SetStream(name, st); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseExpiryRemovesOrigin(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	const ttl = 2 * time.Second
	dying := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: dying, ID: "a", TTL: ttl})
	runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", TTL: ttl})
	v := runView(t, ViewConfig{Client: etcd.Client()})
	mustSet(t, a, "s", StreamState{Epoch: "k", Role: RolePrimary})
	awaitView(t, v, "listed a's stream", routeIs("s", "a", ""))

	// The process dies: its client goes, its lease is not revoked.
	died := time.Now()
	dying.Close()
	awaitView(t, v, "dropped a", hasOrigins("b"))
	gone := time.Since(died)
	if _, _, ok := v.Lookup("s"); ok {
		t.Error("a's stream still listed")
	}
	// etcd checks for expired leases every 500 ms.
	if gone > ttl+2*time.Second {
		t.Errorf("a gone after %v, TTL %v", gone, ttl)
	}
	t.Logf("origin gone from the view %v after its process died (TTL %v)", gone.Round(time.Millisecond), ttl)
}

func TestSetStreamRefuses(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	r, err := NewRegistration(RegistrationConfig{Client: etcd.Client(), ID: "a", PublicURL: "http://a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		st   StreamState
	}{
		{"bad/name", StreamState{}},
		{"", StreamState{}},
		{"s", StreamState{Role: "leader"}},
		{"s", StreamState{Epoch: "0abc"}},
	} {
		if err := r.SetStream(c.name, c.st); err == nil {
			t.Errorf("SetStream(%q, %+v) took it", c.name, c.st)
		}
	}
	if _, err := r.AgreeEpoch(context.Background(), "s", "", "k"); err == nil {
		t.Error("AgreeEpoch took no fingerprint")
	}
}

func TestNewRegistrationRefuses(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	for _, c := range []struct {
		name string
		cfg  RegistrationConfig
	}{
		{"no client", RegistrationConfig{ID: "a", PublicURL: "http://a"}},
		{"no id", RegistrationConfig{Client: cli, PublicURL: "http://a"}},
		{"id with a slash", RegistrationConfig{Client: cli, ID: "a/b", PublicURL: "http://a"}},
		{"no public URL", RegistrationConfig{Client: cli, ID: "a"}},
		{"prefix without a slash", RegistrationConfig{Client: cli, ID: "a", PublicURL: "http://a", Prefix: "/x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewRegistration(c.cfg); err == nil {
				t.Error("took it")
			}
		})
	}
}

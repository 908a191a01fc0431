package directory

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// awaitTimeout bounds every wait of these tests.
const awaitTimeout = 30 * time.Second

// runRegistration starts cfg's Registration, and stops it when the test
// ends.
func runRegistration(t *testing.T, cfg RegistrationConfig) *Registration {
	t.Helper()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.ID + ".example:8081"
	}
	if cfg.RTMPURL == "" {
		cfg.RTMPURL = "rtmp://" + cfg.ID + ".example:1935/live"
	}
	r, err := NewRegistration(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "registration "+cfg.ID, r.Run)
	return r
}

// runUntilCleanup runs run until the test ends, then cancels it and
// waits for it, failing the test if it returned an error other than
// ErrClientClosed (the tests close clients to kill an origin).
func runUntilCleanup(t *testing.T, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, ErrClientClosed) {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// runView starts a View on cli, and waits until it has loaded the
// directory; it stops it when the test ends.
func runView(t *testing.T, cfg ViewConfig) *View {
	t.Helper()
	v, err := NewView(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "view", v.Run)
	select {
	case <-v.Ready():
	case <-time.After(awaitTimeout):
		t.Fatal("view not loaded")
	}
	return v
}

// awaitView waits until cond holds of v's snapshot, woken by its Changed
// channel.
func awaitView(t *testing.T, v *View, what string, cond func(*Snapshot) bool) *Snapshot {
	t.Helper()
	timeout := time.After(awaitTimeout)
	for {
		changed := v.Changed()
		if s := v.Snapshot(); cond(s) {
			return s
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("view: never %s", what)
		}
	}
}

// awaitRegistration waits until cond holds of r's status.
func awaitRegistration(t *testing.T, r *Registration, what string, cond func(Status) bool) Status {
	t.Helper()
	timeout := time.After(awaitTimeout)
	for {
		st, changed := r.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("registration %s: never %s (status %+v)", r.cfg.ID, what, st)
		}
	}
}

// awaitHealth waits until v's health is current, or not.
func awaitHealth(t *testing.T, v *View, current bool) Health {
	t.Helper()
	timeout := time.After(awaitTimeout)
	for {
		h, changed := v.Health()
		if h.Current == current {
			return h
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("view: never current=%v (health %+v)", current, h)
		}
	}
}

// routeIs reports whether stream is served by primary and backup (IDs,
// "" for none).
func routeIs(stream, primary, backup string) func(*Snapshot) bool {
	return func(s *Snapshot) bool {
		p, b, ok := s.Lookup(stream)
		if primary == "" {
			return !ok
		}
		return ok && p.ID == primary && b.ID == backup
	}
}

// hasOrigins reports whether the snapshot lists exactly ids.
func hasOrigins(ids ...string) func(*Snapshot) bool {
	return func(s *Snapshot) bool {
		if len(s.origins) != len(ids) {
			return false
		}
		for i, o := range s.origins {
			if o.ID != ids[i] {
				return false
			}
		}
		return true
	}
}

// epochRecord reads stream's epoch record, with the lease it is under.
func epochRecord(t *testing.T, cli *clientv3.Client, name string) (EpochRecord, clientv3.LeaseID, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, DefaultPrefix+"epochs/"+name)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return EpochRecord{}, 0, false
	}
	rec, err := decode[EpochRecord](resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return rec, clientv3.LeaseID(resp.Kvs[0].Lease), true
}

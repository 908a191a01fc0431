package directory

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory/etcdtest"
)

func TestAgreeEpoch(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	regs := map[string]*Registration{}
	for _, id := range []string{"a", "b", "c"} {
		regs[id] = runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: id})
	}
	v := runView(t, ViewConfig{Client: etcd.Client()})
	check := etcd.Client()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()

	steps := []struct {
		name                         string
		before                       func(t *testing.T)
		origin, stream, fp, proposed string
		want                         string
		adopted                      bool
		err                          error
	}{
		{name: "the first creates", origin: "a", stream: "live", fp: "1080p+720p", proposed: "e1", want: "e1"},
		{name: "the same setup adopts", origin: "b", stream: "live", fp: "1080p+720p", proposed: "e2", want: "e1", adopted: true},
		{name: "another setup is refused", origin: "c", stream: "live", fp: "720p", proposed: "e3", err: ErrSetupMismatch},
		{name: "agreeing again returns the same", origin: "a", stream: "live", fp: "1080p+720p", proposed: "e4", want: "e1", adopted: true},
		{name: "another stream", origin: "c", stream: "other", fp: "720p", proposed: "e5", want: "e5"},
		// c's record of "other" is its earlier instance's: its numbers
		// are not to name other media.
		{name: "an origin's own earlier instance is not taken up again", origin: "c", stream: "other", fp: "720p", proposed: "e7", want: "e7"},
		{
			name: "a new setup once the old one ended everywhere",
			before: func(t *testing.T) {
				for _, id := range []string{"a", "b"} {
					mustSet(t, regs[id], "live", StreamState{Epoch: "e1", Fingerprint: "1080p+720p", Role: RolePrimary})
				}
				awaitView(t, v, "listed live", func(s *Snapshot) bool { _, b, ok := s.Lookup("live"); return ok && b.ID != "" })
				regs["a"].RemoveStream("live")
				regs["b"].RemoveStream("live")
				awaitView(t, v, "dropped live", routeIs("live", "", ""))
				if rec, _, ok := epochRecord(t, check, "live"); ok {
					t.Errorf("epoch record outlived the stream: %+v", rec)
				}
			},
			origin: "c", stream: "live", fp: "720p", proposed: "e6", want: "e6",
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			a, err := regs[st.origin].AgreeEpoch(ctx, st.stream, st.fp, st.proposed)
			if !errors.Is(err, st.err) || a.Epoch != st.want || a.Adopted != st.adopted || a.Standby {
				t.Fatalf("AgreeEpoch = %+v, %v; want %q, adopted %v, %v", a, err, st.want, st.adopted, st.err)
			}
			if st.err != nil {
				return
			}
			rec, _, ok := epochRecord(t, check, st.stream)
			if !ok || rec.Epoch != st.want || rec.Fingerprint != st.fp {
				t.Errorf("epoch record %+v (%v)", rec, ok)
			}
		})
	}
}

// The epoch record outlives the origin that created it, as long as
// another serves the stream.
func TestEpochOutlivesCreator(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	const ttl = 2 * time.Second
	dying := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: dying, ID: "a", TTL: ttl})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", TTL: ttl})
	// c joins within its window, however long a's lease takes to end.
	c := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "c", TTL: ttl, JoinWindow: time.Hour})
	v := runView(t, ViewConfig{Client: etcd.Client()})
	check := etcd.Client()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()

	agree := func(r *Registration, fp, proposed string) (string, error) {
		a, err := r.AgreeEpoch(ctx, "live", fp, proposed)
		return a.Epoch, err
	}
	if e, err := agree(a, "fp", "e1"); err != nil || e != "e1" {
		t.Fatalf("a: %q, %v", e, err)
	}
	if e, err := agree(b, "fp", "e2"); err != nil || e != "e1" {
		t.Fatalf("b: %q, %v", e, err)
	}
	mustSet(t, a, "live", StreamState{Epoch: "e1", Fingerprint: "fp", Role: RolePrimary})
	mustSet(t, b, "live", StreamState{Epoch: "e1", Fingerprint: "fp", Role: RoleBackup})
	awaitView(t, v, "listed live on a and b", routeIs("live", "a", "b"))
	aLease := awaitRegistration(t, a, "registered", func(s Status) bool { return s.Registered }).Lease
	bLease := awaitRegistration(t, b, "registered", func(s Status) bool { return s.Registered }).Lease
	if _, lease, _ := epochRecord(t, check, "live"); lease != aLease {
		t.Fatalf("record under lease %x, not a's %x", lease, aLease)
	}

	// a dies: its lease takes the record, and b puts it back under its own.
	w := check.Watch(ctx, DefaultPrefix+"epochs/live")
	dying.Close()
	awaitView(t, v, "dropped a", routeIs("live", "b", ""))
	if rec := awaitPutBack(t, w, bLease); rec.Epoch != "e1" || rec.Holder != "b" {
		t.Fatalf("record put back as %+v", rec)
	}
	if e, err := agree(c, "fp", "e3"); err != nil || e != "e1" {
		t.Errorf("c with the same setup: %q, %v", e, err)
	}
	if e, err := agree(c, "other", "e4"); !errors.Is(err, ErrSetupMismatch) {
		t.Errorf("c with another setup: %q, %v", e, err)
	}
}

// With the record gone and not yet put back, the stream keys of the
// origins serving the stream stand for it: another setup is refused,
// and the same one is on standby (the record went with its holder: the
// stream is well on).
func TestAgreeEpochFromStreamKeys(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	a := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "a"})
	cli := etcd.Client()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	st := encode(StreamState{Epoch: "e9", Fingerprint: "fp", Role: RolePrimary})
	if _, err := cli.Put(ctx, DefaultPrefix+"streams/live/x", st); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fp   string
		want Agreement
		err  error
	}{
		{"other", Agreement{}, ErrSetupMismatch},
		{"fp", Agreement{Epoch: "e1", Standby: true}, nil},
	} {
		got, err := a.AgreeEpoch(ctx, "live", c.fp, "e1")
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("AgreeEpoch(%s) = %+v, %v; want %+v, %v", c.fp, got, err, c.want, c.err)
		}
	}
	if rec, lease, ok := epochRecord(t, cli, "live"); ok {
		t.Errorf("a standby wrote the record %+v under %x", rec, lease)
	}
}

// An origin that comes after its JoinWindow (restarted while its
// publisher reconnects) serves an epoch of its own on standby: the
// stream's route does not pair it with the others, and takes it once
// they are gone.
func TestAgreeEpochLate(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	const ttl = 2 * time.Second
	dying := etcd.Client()
	a := runRegistration(t, RegistrationConfig{Client: dying, ID: "a", TTL: ttl})
	b := runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: "b", TTL: ttl, JoinWindow: time.Nanosecond})
	v := runView(t, ViewConfig{Client: etcd.Client()})
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	if got, err := a.AgreeEpoch(ctx, "live", "fp", "e1"); err != nil || got != (Agreement{Epoch: "e1"}) {
		t.Fatalf("a: %+v, %v", got, err)
	}
	mustSet(t, a, "live", StreamState{Epoch: "e1", Fingerprint: "fp", Role: RolePrimary})
	got, err := b.AgreeEpoch(ctx, "live", "fp", "e2")
	if err != nil || got != (Agreement{Epoch: "e2", Standby: true}) {
		t.Fatalf("b: %+v, %v", got, err)
	}
	mustSet(t, b, "live", StreamState{Epoch: "e2", Fingerprint: "fp", Role: RoleStandby})
	// b writes its changes in order: once the view has the next, it has
	// this one (which changes no route).
	mustSet(t, b, "marker", StreamState{Epoch: "e3", Role: RolePrimary})
	s := awaitView(t, v, "listed b's marker", routeIs("marker", "b", ""))
	if o := s.Origins(); len(o) != 2 || o[1].Serving != 2 {
		t.Errorf("origins %+v: b serves 2 streams", o)
	}
	if r, ok := s.Route("live"); !ok || r.Epoch != "e1" || r.Primary.ID != "a" || r.Backup.ID != "" {
		t.Errorf("route %+v (%v), want e1 on a alone", r, ok)
	}
	if rec, _, ok := epochRecord(t, etcd.Client(), "live"); !ok || rec.Epoch != "e1" || rec.Holder != "a" {
		t.Errorf("record %+v (%v)", rec, ok)
	}
	dying.Close()
	s = awaitView(t, v, "dropped a", func(s *Snapshot) bool { r, _ := s.Route("live"); return r.Primary.ID == "b" })
	if r, _ := s.Route("live"); r.Epoch != "e2" || r.Backup.ID != "" {
		t.Errorf("route %+v, want e2 on b alone", r)
	}
}

// awaitPutBack reads w until a deletion of the record, then a put of it
// under lease, and returns what was put.
func awaitPutBack(t *testing.T, w clientv3.WatchChan, lease clientv3.LeaseID) EpochRecord {
	t.Helper()
	deleted := false
	for wr := range w {
		if err := wr.Err(); err != nil {
			t.Fatalf("watch: %v", err)
		}
		for _, ev := range wr.Events {
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				deleted = true
			case deleted && clientv3.LeaseID(ev.Kv.Lease) == lease:
				rec, err := decode[EpochRecord](ev.Kv.Value)
				if err != nil {
					t.Fatal(err)
				}
				return rec
			}
		}
	}
	t.Fatal("watch closed")
	return EpochRecord{}
}

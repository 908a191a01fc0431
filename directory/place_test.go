package directory

import (
	"errors"
	"fmt"
	"testing"

	"github.com/golivestream/live/directory/etcdtest"
)

func TestPlace(t *testing.T) {
	o := func(id, zone string, streams int, cpu float64) Origin {
		return Origin{ID: id, Zone: zone, RTMPURL: "rtmp://" + id, Load: Load{Streams: streams, TranscodeCPU: cpu}}
	}
	noRTMP := o("a", "z1", 0, 0)
	noRTMP.RTMPURL = ""
	listed := o("a", "z1", 0, 0)
	listed.Serving = 5 // its report lags
	busyPrimary := o("a", "z1", 1, 0)
	busyPrimary.Primaries = 1
	cases := []struct {
		name            string
		origins         []Origin
		primary, backup string
		err             error
	}{
		{"none", nil, "", "", ErrNoOrigins},
		{"none takes streams", []Origin{noRTMP}, "", "", ErrNoOrigins},
		{"one", []Origin{o("a", "z1", 3, 0)}, "a", "", nil},
		{"least loaded first", []Origin{o("a", "z1", 3, 0), o("b", "z2", 1, 0), o("c", "z3", 2, 0)}, "b", "c", nil},
		{"transcoding counts", []Origin{o("a", "z1", 1, 4), o("b", "z2", 2, 0), o("c", "z3", 3, 0)}, "b", "c", nil},
		{"ingest counts", []Origin{{ID: "a", Zone: "z1", RTMPURL: "r", Load: Load{Streams: 1, IngestBPS: 50e6}}, o("b", "z2", 3, 0)}, "b", "a", nil},
		{"backup in another zone, though busier", []Origin{o("a", "z1", 0, 0), o("b", "z1", 1, 0), o("c", "z2", 5, 0)}, "a", "c", nil},
		{"all in one zone", []Origin{o("a", "z1", 2, 0), o("b", "z1", 1, 0), o("c", "z1", 3, 0)}, "b", "a", nil},
		{"listed streams count when reports lag", []Origin{listed, o("b", "z2", 1, 0), o("c", "z3", 2, 0)}, "b", "c", nil},
		{"ties go to fewer primaries", []Origin{busyPrimary, o("b", "z2", 1, 0)}, "b", "a", nil},
		{"ties go to the least ID", []Origin{o("b", "z2", 0, 0), o("a", "z1", 0, 0)}, "a", "b", nil},
		{"origins without RTMP are passed over", []Origin{noRTMP, o("b", "z2", 4, 0), o("c", "z3", 5, 0)}, "b", "c", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, b, err := Place(c.origins)
			if !errors.Is(err, c.err) || p.ID != c.primary || b.ID != c.backup {
				t.Errorf("Place = %q, %q, %v; want %q, %q, %v", p.ID, b.ID, err, c.primary, c.backup, c.err)
			}
			if p.ID != "" && p.ID == b.ID {
				t.Errorf("primary and backup on %s", p.ID)
			}
		})
	}
}

// Placement through a view spreads streams over the origins by load,
// counting those placed but not yet live, and never puts a primary and
// its backup on one origin or zone.
func TestPlacementSpreads(t *testing.T) {
	threeZones := map[string]string{"a": "z1", "b": "z2", "c": "z3"}
	cases := []struct {
		name  string
		zones map[string]string
		loads map[string]Load
		want  map[string]int // streams on each origin, primary or backup
	}{
		{"equal loads", threeZones, nil, map[string]int{"a": 4, "b": 4, "c": 4}},
		{"a transcodes a lot", threeZones, map[string]Load{"a": {TranscodeCPU: 6}}, map[string]int{"a": 0, "b": 6, "c": 6}},
		{"a ingests some", threeZones, map[string]Load{"a": {Streams: 1, IngestBPS: 10e6}}, map[string]int{"a": 2, "b": 5, "c": 5}},
		// c, alone in its zone, is in every pair, however busy.
		{"two zones", map[string]string{"a": "z1", "b": "z1", "c": "z2"}, nil, map[string]int{"a": 3, "b": 3, "c": 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			etcd := etcdtest.Start(t, etcdtest.Config{})
			regs := map[string]*Registration{}
			for _, id := range []string{"a", "b", "c"} {
				load := c.loads[id]
				regs[id] = runRegistration(t, RegistrationConfig{Client: etcd.Client(), ID: id, Zone: c.zones[id], Load: func() Load { return load }})
			}
			v := runView(t, ViewConfig{Client: etcd.Client()})
			awaitView(t, v, "listed a, b and c", hasOrigins("a", "b", "c"))
			awaitHealth(t, v, true)

			got := map[string]int{"a": 0, "b": 0, "c": 0}
			placed := map[string]Placement{}
			for i := range 6 {
				stream := fmt.Sprintf("s%d", i)
				p, err := v.Place(stream)
				if err != nil {
					t.Fatal(err)
				}
				if p.Live || p.Primary.ID == p.Backup.ID || p.Primary.Zone == p.Backup.Zone {
					t.Fatalf("%s placed on %+v", stream, p)
				}
				if again, err := v.Place(stream); err != nil || again.Primary.ID != p.Primary.ID || again.Backup.ID != p.Backup.ID {
					t.Errorf("%s placed again on %s, %s (%v)", stream, again.Primary.ID, again.Backup.ID, err)
				}
				got[p.Primary.ID]++
				got[p.Backup.ID]++
				placed[stream] = p
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("streams per origin %v, want %v", got, c.want)
			}

			// The origins take the streams up; placing a live stream
			// answers its origins.
			for stream, p := range placed {
				mustSet(t, regs[p.Primary.ID], stream, StreamState{Epoch: "e1", Role: RolePrimary})
				mustSet(t, regs[p.Backup.ID], stream, StreamState{Epoch: "e1", Role: RoleBackup})
			}
			s := awaitView(t, v, "listed 6 streams", func(s *Snapshot) bool {
				n := 0
				for _, o := range s.origins {
					n += o.Serving
				}
				return n == 12
			})
			for _, o := range s.Origins() {
				if o.Serving != c.want[o.ID] {
					t.Errorf("origin %s serves %d, want %d", o.ID, o.Serving, c.want[o.ID])
				}
			}
			for stream, want := range placed {
				p, err := v.Place(stream)
				if err != nil || !p.Live || p.Primary.ID != want.Primary.ID || p.Backup.ID != want.Backup.ID {
					t.Errorf("live %s placed on %s, %s (%v)", stream, p.Primary.ID, p.Backup.ID, err)
				}
			}
		})
	}
}

func TestPlaceRefusesWhenStale(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	runRegistration(t, RegistrationConfig{Client: cli, ID: "a"})
	v, err := NewView(ViewConfig{Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	// Not yet run: never current.
	if _, err := v.Place("s"); !errors.Is(err, ErrStale) {
		t.Errorf("Place before the view loaded: %v", err)
	}
}

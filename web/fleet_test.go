package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/golivestream/live/internal/streaminfo"
)

// originAPI serves streams as an origin's /api/streams, or fails with
// code when it is not 200.
func originAPI(t *testing.T, code int, streams ...streaminfo.Stream) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/streams" || code != http.StatusOK {
			http.Error(w, "down", code)
			return
		}
		json.NewEncoder(w).Encode(struct {
			Streams []streaminfo.Stream `json:"streams"`
		}{streams})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFleetStreams: a PoP node's stream list, from every origin of the
// fleet: each stream once, with the origins serving it in the order PoPs
// fetch in, described by the first live one; origins that fail are left
// out; the fallback when no origin answers or the fleet has none.
func TestFleetStreams(t *testing.T) {
	at := func(origin, zone, role, epoch string) []streaminfo.Placement {
		return []streaminfo.Placement{{Origin: origin, Zone: zone, Role: role, Epoch: epoch}}
	}
	o1 := originAPI(t, http.StatusOK,
		streaminfo.Stream{Name: "s", Live: true, Started: "o1", Fleet: at("o1", "z1", "primary", "e1")},
		streaminfo.Stream{Name: "old", Live: false, Started: "o1", Fleet: at("o1", "z1", "primary", "e0")})
	o2 := originAPI(t, http.StatusOK,
		streaminfo.Stream{Name: "s", Live: true, Started: "o2", Fleet: at("o2", "z2", "backup", "e1")},
		streaminfo.Stream{Name: "old", Live: true, Started: "o2", Fleet: at("o2", "z2", "standby", "e5")},
		streaminfo.Stream{Name: "t", Live: true, Started: "o2", Fleet: at("o2", "z2", "primary", "e2")})
	o3 := originAPI(t, http.StatusOK,
		streaminfo.Stream{Name: "s", Live: true, Started: "o3", Fleet: at("o3", "z3", "backup", "e1")})
	down := originAPI(t, http.StatusInternalServerError)
	fallback := []streaminfo.Stream{{Name: "fallback"}}
	fallbackFn := func(context.Context) ([]streaminfo.Stream, error) { return fallback, nil }
	type brief struct {
		name, started string
		fleet         []string
	}
	for _, tc := range []struct {
		name    string
		origins []string
		want    []brief
	}{
		{"merged", []string{down, o3, o2, o1}, []brief{
			{"old", "o2", []string{"o1 primary", "o2 standby"}}, // the live description
			{"s", "o1", []string{"o1 primary", "o2 backup", "o3 backup"}},
			{"t", "o2", []string{"o2 primary"}},
		}},
		{"no origin answers", []string{down}, []brief{{"fallback", "", nil}}},
		{"no origins", nil, []brief{{"fallback", "", nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := FleetStreams(http.DefaultClient, func() []string { return tc.origins }, fallbackFn)(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []brief
			for _, st := range list {
				b := brief{name: st.Name, started: st.Started}
				for _, p := range st.Fleet {
					b.fleet = append(b.fleet, p.Origin+" "+p.Role)
				}
				got = append(got, b)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	failing := func(context.Context) ([]streaminfo.Stream, error) { return nil, errors.New("no origin") }
	if _, err := FleetStreams(http.DefaultClient, func() []string { return []string{down} }, failing)(context.Background()); err == nil {
		t.Error("no origin and no fallback: no error")
	}
}

// TestOriginsAPI: GET /api/origins answers the fleet as the node's
// directory has it, and 404 on a node without one.
func TestOriginsAPI(t *testing.T) {
	streams := func(context.Context) ([]streaminfo.Stream, error) { return nil, nil }
	fleet := Fleet{Current: true, Origins: []FleetOrigin{{ID: "o1", Zone: "z1", URL: "http://o1", Streams: 2, Primaries: 1, Score: 2.5}}}
	for _, tc := range []struct {
		name  string
		fleet func() Fleet
		code  int
		want  *Fleet
	}{
		{"no fleet", nil, http.StatusNotFound, nil},
		{"fleet", func() Fleet { return fleet }, http.StatusOK, &fleet},
		{"no origins", func() Fleet { return Fleet{} }, http.StatusOK, &Fleet{Origins: []FleetOrigin{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Streams: streams, Fleet: tc.fleet})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/origins", nil))
			if w.Code != tc.code || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
			}
			if tc.want == nil {
				return
			}
			var got Fleet
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, tc.want) {
				t.Errorf("got %+v, want %+v", got, *tc.want)
			}
		})
	}
}

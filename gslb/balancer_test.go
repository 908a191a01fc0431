package gslb

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clock is a virtual clock for balancers under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestBalancer returns a balancer on a virtual clock with testMap,
// reports every 3 s, and its registry.
func newTestBalancer(t *testing.T, cfg Config) (*Balancer, *clock, *prometheus.Registry) {
	t.Helper()
	m, err := ParseMap([]byte(testMap))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	cfg.Map, cfg.Now, cfg.Registerer = m, c.now, reg
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, c, reg
}

func report(t *testing.T, b *Balancer, r Report) {
	t.Helper()
	if r.URL == "" {
		r.URL = "http://" + r.Name + ".example"
	}
	if err := b.Report(r); err != nil {
		t.Fatal(err)
	}
}

var (
	inTen  = netip.MustParseAddr("10.200.0.1") // pop-a 5 ms, pop-b 30 ms
	inC    = netip.MustParseAddr("10.1.2.3")   // pop-c only
	nowher = netip.MustParseAddr("192.0.2.1")  // 0.0.0.0/0: pop-b only
)

func TestAssign(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		reports []Report
		addr    netip.Addr
		n       int // assignments before the one checked
		pop     string
		reason  string
		url     string
	}{
		{name: "nearest", reports: []Report{{Name: "pop-a", CapacityViewers: 10}, {Name: "pop-b"}},
			addr: inTen, pop: "pop-a", reason: ReasonNearest, url: "http://pop-a.example"},
		{name: "nearest full by viewers: spill-over",
			reports: []Report{{Name: "pop-a", Viewers: 8, CapacityViewers: 10}, {Name: "pop-b"}},
			addr:    inTen, n: 2, pop: "pop-b", reason: ReasonSpillover},
		{name: "room for the last one",
			reports: []Report{{Name: "pop-a", Viewers: 8, CapacityViewers: 10}, {Name: "pop-b"}},
			addr:    inTen, n: 1, pop: "pop-a", reason: ReasonNearest},
		{name: "full by bits/s, measured per viewer",
			reports: []Report{{Name: "pop-a", Viewers: 10, EgressBPS: 10e6, CapacityBPS: 12e6}, {Name: "pop-b"}},
			addr:    inTen, n: 2, pop: "pop-b", reason: ReasonSpillover},
		{name: "bits/s with the default per viewer",
			cfg:     Config{ViewerBPS: 5e6},
			reports: []Report{{Name: "pop-a", CapacityBPS: 12e6}, {Name: "pop-b"}},
			addr:    inTen, n: 2, pop: "pop-b", reason: ReasonSpillover},
		{name: "utilization",
			cfg:     Config{Utilization: 0.5},
			reports: []Report{{Name: "pop-a", Viewers: 5, CapacityViewers: 10}, {Name: "pop-b"}},
			addr:    inTen, pop: "pop-b", reason: ReasonSpillover},
		{name: "draining", reports: []Report{{Name: "pop-a", Draining: true}, {Name: "pop-b"}},
			addr: inTen, pop: "pop-b", reason: ReasonSpillover},
		{name: "overloaded", reports: []Report{{Name: "pop-a", Overloaded: true}, {Name: "pop-b"}},
			addr: inTen, pop: "pop-b", reason: ReasonSpillover},
		{name: "all overloaded: overflow",
			cfg:     Config{OverflowURL: "https://cdn.example"},
			reports: []Report{{Name: "pop-a", Overloaded: true}, {Name: "pop-b", Overloaded: true}},
			addr:    inTen, reason: ReasonOverflow, url: "https://cdn.example"},
		{name: "not reporting", reports: []Report{{Name: "pop-b"}},
			addr: inTen, pop: "pop-b", reason: ReasonSpillover},
		{name: "a PoP the network does not list is never chosen",
			cfg: Config{OverflowURL: "https://cdn.example/"}, reports: []Report{{Name: "pop-a"}, {Name: "pop-b"}},
			addr: inC, reason: ReasonOverflow, url: "https://cdn.example"},
		{name: "all full: overflow",
			cfg:     Config{OverflowURL: "https://cdn.example"},
			reports: []Report{{Name: "pop-b", Viewers: 3, CapacityViewers: 3}},
			addr:    nowher, reason: ReasonOverflow, url: "https://cdn.example"},
		{name: "all full, no overflow: unavailable",
			reports: []Report{{Name: "pop-b", Viewers: 3, CapacityViewers: 3}},
			addr:    nowher, reason: ReasonUnavailable},
		{name: "default entry", reports: []Report{{Name: "pop-a"}, {Name: "pop-b"}},
			addr: netip.Addr{}, pop: "pop-a", reason: ReasonNearest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, _ := newTestBalancer(t, tt.cfg)
			for _, r := range tt.reports {
				report(t, b, r)
			}
			for range tt.n {
				b.Assign(tt.addr)
			}
			rt := b.Assign(tt.addr)
			if rt.PoP != tt.pop || rt.Reason != tt.reason {
				t.Errorf("route %+v, want %q (%s)", rt, tt.pop, tt.reason)
			}
			if tt.url != "" && rt.URL != tt.url {
				t.Errorf("URL %q, want %q", rt.URL, tt.url)
			}
		})
	}
}

// TestAssignCounts: viewers sent count against a PoP until its next
// report, and those sent within Horizon before a report stay counted
// (they are in flight), unless IgnoreInFlight.
func TestAssignCounts(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		b, c, _ := newTestBalancer(t, Config{Horizon: 2 * time.Second, IgnoreInFlight: ignore})
		pop := Report{Name: "pop-b", CapacityViewers: 10}
		report(t, b, pop)
		for range 4 { // at t=0
			b.Assign(nowher)
		}
		c.advance(1500 * time.Millisecond)
		for range 3 { // at t=1.5 s
			b.Assign(nowher)
		}
		c.advance(1500 * time.Millisecond) // t=3 s: the 3 within 2 s are in flight
		report(t, b, pop)
		st := b.PoPs()[0]
		want := int64(3)
		if ignore {
			want = 0
		}
		if st.InFlightViewers != want || st.AssignedViewers != 0 {
			t.Errorf("ignore=%v: in flight %d, assigned %d; want %d, 0", ignore, st.InFlightViewers, st.AssignedViewers, want)
		}
		b.Assign(nowher)
		if got := b.PoPs()[0].AssignedViewers; got != 1 {
			t.Errorf("assigned since the report: %d, want 1", got)
		}
		// Room: 10 − 3 in flight − 1 assigned = 6 more.
		n := 0
		for b.Assign(nowher).PoP != "" {
			n++
		}
		if want := 6 + 3 - int(want); n != want {
			t.Errorf("ignore=%v: %d more fit, want %d", ignore, n, want)
		}
	}
}

// TestAssignPrediction: a rising PoP is full before its reports say so;
// a falling one is taken at its last report, not at the predicted fall.
func TestAssignPrediction(t *testing.T) {
	tests := []struct {
		name    string
		viewers []int64
		room    int
	}{
		{"rising: 20 per report, 40 predicted", []int64{0, 20, 40}, 100 - 60},
		{"falling: the last report counts", []int64{80, 60, 40}, 100 - 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, c, _ := newTestBalancer(t, Config{IgnoreInFlight: true, Predictor: Linear{}})
			for _, v := range tt.viewers {
				report(t, b, Report{Name: "pop-b", Viewers: v, CapacityViewers: 100})
				c.advance(3 * time.Second)
			}
			c.t = c.t.Add(-3 * time.Second)
			n := 0
			for b.Assign(nowher).PoP != "" {
				n++
			}
			if n != tt.room {
				t.Errorf("%d viewers fit, want %d", n, tt.room)
			}
		})
	}
}

// TestPoPLifetime: a PoP silent for Timeout is removed; one whose report
// session ends is removed at once, unless it reported on another since.
func TestPoPLifetime(t *testing.T) {
	b, c, reg := newTestBalancer(t, Config{Interval: time.Second}) // Timeout 3 s
	report(t, b, Report{Name: "pop-a"})
	c.advance(time.Second)
	if err := b.report(Report{Name: "pop-b", URL: "http://b"}, 7); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Second)
	if got := b.Assign(inTen).PoP; got != "pop-a" {
		t.Fatalf("at the timeout: %q", got)
	}
	c.advance(time.Millisecond)
	if rt := b.Assign(inTen); rt.PoP != "pop-b" {
		t.Fatalf("past pop-a's timeout: %+v", rt)
	}
	if len(b.PoPs()) != 1 {
		t.Errorf("pop-a not removed: %+v", b.PoPs())
	}
	if n := len(gather(t, reg)["live_gslb_pop_viewers"]); n != 2 {
		t.Errorf("%d viewer gauges, want pop-b's 2", n)
	}
	b.endSession(8, "gone") // another session
	if len(b.PoPs()) != 1 {
		t.Fatal("another session's end removed pop-b")
	}
	b.endSession(7, "gone")
	if rt := b.Assign(inTen); rt.Reason != ReasonUnavailable || len(b.PoPs()) != 0 {
		t.Errorf("after its session ended: %+v, %+v", rt, b.PoPs())
	}
}

func TestPeek(t *testing.T) {
	b, _, _ := newTestBalancer(t, Config{})
	report(t, b, Report{Name: "pop-a", Viewers: 1, CapacityViewers: 1})
	report(t, b, Report{Name: "pop-b", Viewers: 2, CapacityViewers: 10})
	rt := b.Peek(inTen)
	if rt.PoP != "pop-b" || rt.Reason != ReasonSpillover || rt.Network != "10.0.0.0/8" || rt.LatencyMS != 30 ||
		rt.Viewers != 2 || rt.CapacityViewers != 10 || len(rt.Skipped) != 1 || rt.Skipped[0] != (Skip{PoP: "pop-a", Why: "full"}) {
		t.Errorf("Peek: %+v", rt)
	}
	if got := b.PoPs()[1].AssignedViewers; got != 0 {
		t.Errorf("Peek counted: %d", got)
	}
}

func TestBalancerMetrics(t *testing.T) {
	b, _, reg := newTestBalancer(t, Config{OverflowURL: "https://cdn.example"})
	report(t, b, Report{Name: "pop-b", Viewers: 1, CapacityViewers: 3})
	for range 4 {
		b.Assign(nowher)
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		`live_gslb_assignments_total{pop="pop-b",reason="nearest"}`:   2,
		`live_gslb_assignments_total{pop="pop-b",reason="spillover"}`: 0,
		`live_gslb_overflow_total`:                                    2,
		`live_gslb_unavailable_total`:                                 0,
		`live_gslb_pops`:                                              1,
		`live_gslb_pop_viewers{kind="measured",pop="pop-b"}`:          1,
		`live_gslb_pop_capacity{pop="pop-b",unit="viewers"}`:          3,
	} {
		family, _, _ := strings.Cut(name, "{")
		if v, ok := got[family][name]; !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
}

// gather returns the values in reg by family and by name{labels}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range families {
		out[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[f.GetName()][name] = v
		}
	}
	return out
}

func TestNewBalancerErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Horizon: -time.Second},
		{Utilization: 1.5},
		{OverflowURL: "cdn.example"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	b, _, _ := newTestBalancer(t, Config{})
	if err := b.Report(Report{Name: "pop-a", URL: "ftp://a"}); err == nil {
		t.Error("an invalid report was accepted")
	}
}

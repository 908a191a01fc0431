package pop

import (
	"net/http"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

func TestDeltaQuantile(t *testing.T) {
	h := &rtmetrics.Float64Histogram{
		Buckets: []float64{0, 0.001, 0.01, 0.1, 1},
		Counts:  []uint64{90, 9, 1, 0},
	}
	for _, tc := range []struct {
		name string
		prev []uint64
		q    float64
		want time.Duration
	}{
		{"all, p50", nil, 0.5, time.Millisecond},
		{"all, p99", nil, 0.99, 10 * time.Millisecond},
		{"all, p100", nil, 1, 100 * time.Millisecond},
		{"since prev: only the slow ones", []uint64{90, 9, 0, 0}, 0.99, 100 * time.Millisecond},
		{"nothing since prev", []uint64{90, 9, 1, 0}, 0.99, 0},
	} {
		if got := deltaQuantile(h, tc.prev, tc.q); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAdmission: an overloaded node (here: at MaxViewers) answers a new
// session's first request 503 with Retry-After, and keeps serving the
// sessions it has, including their entry manifests, and what a new client
// asks beyond an entry manifest; it takes new sessions again once it is
// not overloaded.
func TestAdmission(t *testing.T) {
	origin := windowOrigin(t)
	s, base := startPoP(t, Config{Origins: []string{origin.URL}, MaxViewers: 2, OverloadLatency: -1})
	viewer := func(ua string) func(path string) (int, http.Header) {
		c := newClient()
		return func(path string) (int, http.Header) {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			req.Header.Set("User-Agent", ua)
			resp, _ := doAll(t, c, req)
			return resp.StatusCode, resp.Header
		}
	}
	a, b, newcomer := viewer("player-a"), viewer("player-b"), viewer("player-c")
	for _, v := range []func(string) (int, http.Header){a, b} {
		if code, _ := v("/live/s/index.m3u8"); code != 200 {
			t.Fatalf("a first viewer: %d", code)
		}
	}
	update := func() { s.admission.update(s.load.load(defaultViewerWindow).Viewers) }
	update()
	if !s.Overloaded() {
		t.Fatal("two viewers of MaxViewers 2: not overloaded")
	}
	code, h := newcomer("/live/s/index.m3u8")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("a new session while overloaded: %d, Retry-After %q, Cache-Control %q; want 503, a Retry-After, no-store", code, h.Get("Retry-After"), h.Get("Cache-Control"))
	}
	if code, _ := newcomer("/live/s/manifest.mpd"); code != http.StatusServiceUnavailable {
		t.Errorf("a new DASH session while overloaded: %d, want 503", code)
	}
	for path, want := range map[string]int{"/live/s/index.m3u8": 200, "/live/s/manifest.mpd": 404 /* the origin's answer, no refusal */, "/live/s/e/v0/index.m3u8": 200, "/live/s/e/v0/15.m4s": 200} {
		if code, _ := a(path); code != want {
			t.Errorf("a viewer of the node, %s: %d, want %d", path, code, want)
		}
	}
	if code, _ := newcomer("/live/s/e/v0/16.m4s"); code != 200 {
		t.Errorf("a newcomer's segment (no session start): %d, want 200", code)
	}
	if n := counterValue(s.metrics.refused["overload"]); n != 2 {
		t.Errorf("live_pop_refused_total{reason=overload} = %v, want 2", n)
	}
	s.admission.update(0) // the viewers left
	if s.Overloaded() {
		t.Fatal("no viewers: still overloaded")
	}
	if code, _ := viewer("player-d")("/live/s/index.m3u8"); code != 200 {
		t.Errorf("a new session once the node has room: %d, want 200", code)
	}
}

// TestAdmissionLatency: the door closes after admissionSustain busy
// samples in a row, not after one (a crowd's arrival or a segment
// boundary), stays closed while the latency is between half the limit
// and the limit, and opens once it is below half.
func TestAdmissionLatency(t *testing.T) {
	const limit = 100 * time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		closed  bool
	}{
		{"one busy sample", []time.Duration{200 * time.Millisecond}, false},
		{"busy, calm, busy", []time.Duration{200 * time.Millisecond, 10 * time.Millisecond, 200 * time.Millisecond}, false},
		{"sustained", []time.Duration{200 * time.Millisecond, 150 * time.Millisecond}, true},
		{"sustained then between", []time.Duration{200 * time.Millisecond, 150 * time.Millisecond, 70 * time.Millisecond}, true},
		{"sustained then calm", []time.Duration{200 * time.Millisecond, 150 * time.Millisecond, 40 * time.Millisecond}, false},
		{"at the limit", []time.Duration{limit, limit, limit}, false},
	} {
		a := newAdmission(limit, 0, time.Minute)
		for _, p99 := range tc.samples {
			a.judge(p99, 0)
		}
		if got := a.closed.Load(); got != tc.closed {
			t.Errorf("%s: closed %v, want %v", tc.name, got, tc.closed)
		}
	}
}

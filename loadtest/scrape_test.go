package loadtest

import "testing"

var metricsCases = []struct {
	name, in string
	n        int
	err      bool
}{
	{name: "ours", n: 4, in: `# HELP live_pop_upstream_fetches_total Upstream fetches started.
# TYPE live_pop_upstream_fetches_total counter
live_pop_upstream_fetches_total{class="segment",target="origin"} 12
live_pop_upstream_fetches_total{class="segment",target="peer"} 30
live_origin_segments_total{kind="video"} 7
go_goroutines 42
`},
	{name: "escapes and timestamp", n: 1, in: `m{a="x\"y\\z\n",b="}"} 1.5e3 1700000000000` + "\n"},
	{name: "empty", n: 0, in: ""},
	{name: "no value", in: "m{a=\"b\"}\n", err: true},
	{name: "unterminated", in: "m{a=\"b\n", err: true},
	{name: "bad label", in: "m{a=b} 1\n", err: true},
	{name: "bad value", in: "m one\n", err: true},
}

func TestParseMetrics(t *testing.T) {
	for _, tt := range metricsCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMetrics([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if len(got) != tt.n {
				t.Errorf("%d samples, want %d: %+v", len(got), tt.n, got)
			}
		})
	}
	got, _ := parseMetrics([]byte(metricsCases[1].in))
	if l := got[0].labels; l["a"] != "x\"y\\z\n" || l["b"] != "}" || got[0].value != 1500 {
		t.Errorf("sample %+v", got[0])
	}
}

func TestUpstreamDelta(t *testing.T) {
	parse := func(s string) []sample {
		got, err := parseMetrics([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	before := &scrape{samples: map[string][]sample{
		"pop": parse(`live_pop_upstream_fetches_total{class="segment",target="origin"} 10` + "\n"),
		"origin": parse(`live_origin_segments_total{kind="video"} 100
live_origin_segments_total{kind="audio"} 100
live_origin_requests_total{class="segment",code="200"} 20
live_origin_requests_total{class="segment",code="404"} 5
`),
		"gone": parse(`live_origin_segments_total{kind="video"} 1000` + "\n"),
	}}
	after := &scrape{samples: map[string][]sample{
		"pop": parse(`live_pop_upstream_fetches_total{class="segment",target="origin"} 30` + "\n"),
		"origin": parse(`live_origin_segments_total{kind="video"} 110
live_origin_segments_total{kind="audio"} 110
live_origin_requests_total{class="segment",code="200"} 60
live_origin_requests_total{class="segment",code="404"} 9
`),
	}, errors: []string{"gone: refused"}}
	u := upstream(before, after)
	if u.Segments != 20 || u.PoPFetches["segment"] != 20 || u.PoPFetchesPerSegment != 1 || u.OriginRequestsPerSegment != 2 {
		t.Errorf("upstream %+v", u)
	}
	if len(u.Endpoints) != 2 || len(u.Errors) != 1 {
		t.Errorf("endpoints %v errors %v: want the two read both times", u.Endpoints, u.Errors)
	}
}

func FuzzParseMetrics(f *testing.F) {
	for _, tt := range metricsCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseMetrics(data)
		if err != nil {
			return
		}
		for _, s := range got {
			if s.name == "" {
				t.Fatalf("sample without name from %q", data)
			}
		}
	})
}

// TestBucketCounts reads a histogram's percentiles from two scrapes, as
// histogram_quantile does.
func TestBucketCounts(t *testing.T) {
	before, err := parseMetrics([]byte(`live_pop_waiter_release_seconds_bucket{class="part",le="0.001"} 10
live_pop_waiter_release_seconds_bucket{class="part",le="0.01"} 10
live_pop_waiter_release_seconds_bucket{class="part",le="0.1"} 10
live_pop_waiter_release_seconds_bucket{class="part",le="+Inf"} 10
`))
	if err != nil {
		t.Fatal(err)
	}
	// 100 more: 50 under 1 ms, 49 in (1, 10] ms, 1 in (10, 100] ms; and
	// another class, not counted.
	after, err := parseMetrics([]byte(`live_pop_waiter_release_seconds_bucket{class="part",le="0.001"} 60
live_pop_waiter_release_seconds_bucket{class="part",le="0.01"} 109
live_pop_waiter_release_seconds_bucket{class="part",le="0.1"} 110
live_pop_waiter_release_seconds_bucket{class="part",le="+Inf"} 110
live_pop_waiter_release_seconds_bucket{class="playlist",le="+Inf"} 5
`))
	if err != nil {
		t.Fatal(err)
	}
	var h bucketCounts
	h.add(after, before, "live_pop_waiter_release_seconds", map[string]string{"class": "part"})
	l, ok := h.latency()
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if !ok || l.Count != 100 || !near(l.P50, 1) || !near(l.P90, 1+9*40.0/49) || !near(l.P99, 10) || l.Max != 100 {
		t.Errorf("%+v %v; want 100 samples, p50 1 ms, p90 %.3f ms, p99 10 ms, max 100 ms", l, ok, 1+9*40.0/49)
	}
	var none bucketCounts
	none.add(after, before, "live_pop_waiter_release_seconds", map[string]string{"class": "segment"})
	if _, ok := none.latency(); ok {
		t.Error("a class without samples has percentiles")
	}
}

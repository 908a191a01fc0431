package gslb

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testReport = `{"name": "pop-a", "url": "https://a.example/edge/", "viewers": 120, "egress_bps": 3.6e8,
 "capacity_viewers": 1000, "capacity_bps": 1e10, "draining": false}`

func TestParseReport(t *testing.T) {
	r, err := ParseReport([]byte(testReport))
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Name: "pop-a", URL: "https://a.example/edge", Viewers: 120, EgressBPS: 3.6e8, CapacityViewers: 1000, CapacityBPS: 1e10}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
}

// reportErrorCases are reports ParseReport refuses, and a word of the
// message that says why; they seed the fuzz test.
var reportErrorCases = []struct {
	name, report, says string
}{
	{"not JSON", `{"name": `, "unexpected EOF"},
	{"unknown field", `{"name": "a", "url": "http://a", "viewer": 1}`, "unknown field"},
	{"trailing data", `{"name": "a", "url": "http://a"} x`, "after the JSON object"},
	{"no name", `{"url": "http://a"}`, "name"},
	{"bad name", `{"name": "a/b", "url": "http://a"}`, "name"},
	{"no url", `{"name": "a"}`, "url"},
	{"relative url", `{"name": "a", "url": "/live"}`, "not an http or https URL"},
	{"javascript url", `{"name": "a", "url": "javascript:alert(1)"}`, "not an http or https URL"},
	{"url with query", `{"name": "a", "url": "http://a/?x=1"}`, "without user, query or fragment"},
	{"url with fragment", `{"name": "a", "url": "http://a/#"}`, "without user, query or fragment"},
	{"url with user", `{"name": "a", "url": "http://u:p@a"}`, "without user"},
	{"url not canonical", `{"name": "a", "url": "http://a/b c"}`, "canonical"},
	{"url without host", `{"name": "a", "url": "http://:80"}`, "no host"},
	{"negative viewers", `{"name": "a", "url": "http://a", "viewers": -1}`, "viewers"},
	{"fractional viewers", `{"name": "a", "url": "http://a", "viewers": 1.5}`, "cannot unmarshal"},
	{"huge egress", `{"name": "a", "url": "http://a", "egress_bps": 1e300}`, "egress_bps"},
	{"negative capacity", `{"name": "a", "url": "http://a", "capacity_bps": -5}`, "capacity_bps"},
	{"too long", `{"name": "a", "url": "http://a", "x": "` + strings.Repeat("x", MaxReportBytes) + `"}`, "more than"},
}

func TestParseReportErrors(t *testing.T) {
	for _, tt := range reportErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReport([]byte(tt.report))
			if !errors.Is(err, ErrInvalidReport) {
				t.Fatalf("error %v does not wrap ErrInvalidReport", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// FuzzParseReport: no input makes ParseReport panic, and a report it
// accepts comes back unchanged from its own JSON.
func FuzzParseReport(f *testing.F) {
	f.Add([]byte(testReport))
	for _, c := range reportErrorCases {
		f.Add([]byte(c.report))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidReport) {
				t.Fatalf("error %v does not wrap ErrInvalidReport", err)
			}
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseReport(again)
		if err != nil {
			t.Fatalf("the JSON of an accepted report is refused: %v\n%s", err, again)
		}
		if r2 != r {
			t.Fatalf("report changed through its JSON: %+v, %+v", r, r2)
		}
	})
}

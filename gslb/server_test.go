package gslb

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// newTestServer serves a balancer (on a real clock) with testMap.
func newTestServer(t *testing.T, bcfg Config, scfg ServerConfig) (*Server, *Balancer, *httptest.Server) {
	t.Helper()
	m, err := ParseMap([]byte(testMap))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	bcfg.Map, bcfg.Registerer = m, reg
	b, err := New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg.Balancer, scfg.Registerer, scfg.Gatherer = b, reg, reg
	s, err := NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.Config.RegisterOnShutdown(s.CloseSessions)
	hs.Start()
	t.Cleanup(hs.Close)
	return s, b, hs
}

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestServePlay(t *testing.T) {
	// The test client is 127.0.0.1: the map's 0.0.0.0/0 sends it to
	// pop-b; a trusted proxy can place it elsewhere.
	_, b, hs := newTestServer(t, Config{}, ServerConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	report(t, b, Report{Name: "pop-a", URL: "http://a.example/edge"})
	report(t, b, Report{Name: "pop-b", URL: "http://b.example:8081"})
	tests := []struct {
		name, path, xff string
		status          int
		location        string
	}{
		{"HLS", "/play/demo/index.m3u8", "", 302, "http://b.example:8081/live/demo/index.m3u8"},
		{"DASH", "/play/cam_1-x/manifest.mpd", "", 302, "http://b.example:8081/live/cam_1-x/manifest.mpd"},
		{"other query not passed on", "/play/demo/index.m3u8?_=123", "", 302, "http://b.example:8081/live/demo/index.m3u8"},
		{"a token in the query goes on in the path", "/play/demo/index.m3u8?token=abc.def-_", "", 302, "http://b.example:8081/t/abc.def-_/live/demo/index.m3u8"},
		{"a token in the path goes on", "/play/t/abc.def/demo/manifest.mpd", "", 302, "http://b.example:8081/t/abc.def/live/demo/manifest.mpd"},
		{"a malformed token", "/play/demo/index.m3u8?token=a%2Fb", "", 400, ""},
		{"through a trusted proxy", "/play/demo/index.m3u8", "10.9.9.9", 302, "http://a.example/edge/live/demo/index.m3u8"},
		{"bad stream name", "/play/de.mo/index.m3u8", "", 400, ""},
		{"stream name too long", "/play/" + strings.Repeat("a", 65) + "/index.m3u8", "", 400, ""},
		{"escaped slash", "/play/a%2Fb/index.m3u8", "", 400, ""},
		{"not a manifest", "/play/demo/1.m4s", "", 404, ""},
		{"deeper path", "/play/demo/e/v0/index.m3u8", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.xff != "" {
				h = []string{"X-Forwarded-For", tt.xff}
			}
			resp, body := do(t, http.MethodGet, hs.URL+tt.path, "", h...)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Errorf("%d %q, want %d %q; %s", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location, body)
			}
			if tt.status == 302 && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
		})
	}
	if resp, _ := do(t, http.MethodHead, hs.URL+"/play/demo/index.m3u8", ""); resp.StatusCode != 302 {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
}

func TestServePlayNoRoute(t *testing.T) {
	for _, overflow := range []string{"", "https://cdn.example"} {
		_, _, hs := newTestServer(t, Config{OverflowURL: overflow}, ServerConfig{})
		resp, _ := do(t, http.MethodGet, hs.URL+"/play/demo/index.m3u8", "")
		switch {
		case overflow == "" && (resp.StatusCode != 503 || resp.Header.Get("Retry-After") == ""):
			t.Errorf("no PoP, no overflow: %d", resp.StatusCode)
		case overflow != "" && (resp.StatusCode != 302 || resp.Header.Get("Location") != overflow+"/live/demo/index.m3u8"):
			t.Errorf("overflow: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"direct, header ignored", "192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"},
		{"through a proxy", "10.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"right-most untrusted", "10.0.0.1:5000", []string{"1.1.1.1, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"several header lines", "10.0.0.1:5000", []string{"1.1.1.1", "198.51.100.7", "10.0.0.2"}, "198.51.100.7"},
		{"all trusted", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage stops at the last trusted hop", "10.0.0.1:5000", []string{"1.1.1.1, junk, 10.0.0.2"}, "10.0.0.2"},
		{"port and brackets", "[2001:db8::1]:443", []string{"[2001:db8:1::5]:1234, 203.0.113.9:80"}, "203.0.113.9"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"no header", "10.0.0.1:5000", nil, "10.0.0.1"},
		{"bad remote", "pipe", nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientAddr(tt.remote, tt.xff, trusted).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestServeRoute(t *testing.T) {
	_, b, hs := newTestServer(t, Config{}, ServerConfig{})
	report(t, b, Report{Name: "pop-a", Viewers: 4, CapacityViewers: 4})
	report(t, b, Report{Name: "pop-b"})
	resp, body := do(t, http.MethodGet, hs.URL+"/api/route?ip=10.1.200.1", "")
	var got struct {
		IP string `json:"ip"`
		Route
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, body)
	}
	if got.IP != "10.1.200.1" || got.PoP != "pop-b" || got.Reason != ReasonNearest || got.Network != "10.1.0.0/16" {
		t.Errorf("route %+v", got)
	}
	resp, body = do(t, http.MethodGet, hs.URL+"/api/route?ip=10.200.0.1", "")
	if !strings.Contains(body, `"why": "full"`) {
		t.Errorf("no reason for passing pop-a over: %s", body)
	}
	if resp, _ := do(t, http.MethodGet, hs.URL+"/api/route?ip=10.1", ""); resp.StatusCode != 400 {
		t.Errorf("bad ip: %d", resp.StatusCode)
	}
	if n := b.PoPs()[1].AssignedViewers; n != 0 {
		t.Errorf("/api/route counted %d viewers", n)
	}
}

func TestServeMapAndControl(t *testing.T) {
	_, b, hs := newTestServer(t, Config{}, ServerConfig{
		ControlNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		ControlToken:    "s3cret",
	})
	auth := []string{"Authorization", "Bearer s3cret"}
	newMap := `{"networks": [{"cidr": "0.0.0.0/0", "latency_ms": {"pop-z": 1}}]}`
	if resp, body := do(t, http.MethodPut, hs.URL+"/api/map", newMap); resp.StatusCode != 401 {
		t.Errorf("without the token: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodPut, hs.URL+"/api/map", `{"networks": [{"cidr": "10.0.0.1/8"}]}`, auth...); resp.StatusCode != 400 || !strings.Contains(body, "host bits") {
		t.Errorf("bad map: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodPut, hs.URL+"/api/map", newMap, auth...); resp.StatusCode != 200 || !strings.Contains(body, `"networks": 1`) {
		t.Errorf("good map: %d %s", resp.StatusCode, body)
	}
	if _, pops := b.Map().Lookup(netip.MustParseAddr("10.0.0.1")); len(pops) != 1 || pops[0].PoP != "pop-z" {
		t.Errorf("map not replaced: %v", pops)
	}
	if _, body := do(t, http.MethodGet, hs.URL+"/api/map", ""); !strings.Contains(body, "pop-z") {
		t.Errorf("GET /api/map: %s", body)
	}

	// From outside the control networks, even with the token.
	_, _, outside := newTestServer(t, Config{}, ServerConfig{ControlNetworks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if resp, _ := do(t, http.MethodPut, outside.URL+"/api/map", newMap); resp.StatusCode != 403 {
		t.Errorf("from outside: %d", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodPost, outside.URL+"/api/report", `{}`); resp.StatusCode != 403 {
		t.Errorf("report from outside: %d", resp.StatusCode)
	}
}

func TestServeReport(t *testing.T) {
	_, b, hs := newTestServer(t, Config{}, ServerConfig{})
	tests := []struct {
		name, body string
		status     int
	}{
		{"one report", `{"name": "pop-a", "url": "http://a.example", "viewers": 3}`, 204},
		{"invalid", `{"name": "pop-a", "url": "ftp://a.example"}`, 400},
		{"too large", `{"name": "pop-a", "url": "http://a.example", "pad": "` + strings.Repeat(" ", MaxReportBytes) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, http.MethodPost, hs.URL+"/api/report", tt.body, "Content-Type", "application/json")
			if resp.StatusCode != tt.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
	if pops := b.PoPs(); len(pops) != 1 || pops[0].Viewers != 3 {
		t.Errorf("PoPs %+v", pops)
	}
	// A single report is no session: nothing ends it but the timeout.
	if pops := b.PoPs(); len(pops) != 1 {
		t.Errorf("the end of a single report removed its PoP: %+v", pops)
	}
}

func TestServeHealthAndMetrics(t *testing.T) {
	_, b, hs := newTestServer(t, Config{}, ServerConfig{})
	report(t, b, Report{Name: "pop-a"})
	if resp, body := do(t, http.MethodGet, hs.URL+"/healthz", ""); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if _, body := do(t, http.MethodGet, hs.URL+"/metrics", ""); !strings.Contains(body, `live_gslb_pop_viewers{kind="predicted",pop="pop-a"} 0`) {
		t.Errorf("/metrics lacks the predicted load:\n%s", body)
	}
	if _, body := do(t, http.MethodGet, hs.URL+"/api/pops", ""); !strings.Contains(body, `"name": "pop-a"`) {
		t.Errorf("/api/pops: %s", body)
	}
}

// TestIngestRoute: GET /api/ingest/{stream} answers the origins the
// fleet's directory places a publisher on, 503 when it cannot, 404
// without a directory.
func TestIngestRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ingest func(string) (IngestRoute, error)
		path   string
		code   int
		want   string
	}{
		{"placed", func(s string) (IngestRoute, error) {
			return IngestRoute{Primary: "rtmp://o1/live/" + s, Backup: "rtmp://o2/live/" + s}, nil
		}, "/api/ingest/cam1", 200, `{"stream":"cam1","primary":"rtmp://o1/live/cam1","backup":"rtmp://o2/live/cam1","live":false}`},
		{"no origin", func(string) (IngestRoute, error) { return IngestRoute{}, ErrNoPlacement }, "/api/ingest/cam1", 503, ""},
		{"bad name", func(string) (IngestRoute, error) { return IngestRoute{}, nil }, "/api/ingest/a.b", 400, ""},
		{"no directory", nil, "/api/ingest/cam1", 404, ""},
	} {
		b, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewServer(ServerConfig{Balancer: b, Ingest: tc.ingest})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		var got bytes.Buffer
		if tc.want != "" {
			if err := json.Compact(&got, rec.Body.Bytes()); err != nil {
				t.Errorf("%s: %v in %s", tc.name, err, rec.Body)
			}
		}
		if rec.Code != tc.code || got.String() != tc.want {
			t.Errorf("%s: %d %s, want %d %s", tc.name, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
}

package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoutes checks the answers to paths and methods the origin does not
// serve: a clear 404 for an unknown path whatever its shape, and 405 with
// the methods allowed for a method other than GET, HEAD and OPTIONS.
func TestRoutes(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()

	for _, tc := range []struct {
		method, path string
		code         int
		body, allow  string
	}{
		{"GET", "/", 404, "no such path", ""},
		{"GET", "/live/", 404, "no such path", ""},
		{"GET", "/live/demo/", 404, "no such path", ""},
		{"GET", "/live/demo/a/b/c/d/e", 404, "no such path", ""},
		{"HEAD", "/nope", 404, "", ""},
		{"GET", "/live/demo/index.m3u8", 404, "no such stream", ""},
		{"GET", "/live/demo/x.txt", 404, "no such file", ""},
		{"GET", "/healthz", 200, "ok", ""},
		{"OPTIONS", "/live/demo/index.m3u8", 204, "", ""},
		{"POST", "/live/demo/index.m3u8", 405, "", "GET, HEAD, OPTIONS"},
		{"DELETE", "/live/demo/", 405, "", "GET, HEAD, OPTIONS"},
	} {
		req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
		if got := resp.Header.Get("Allow"); tc.allow != "" && got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: no CORS header", tc.method, tc.path)
		}
	}
}

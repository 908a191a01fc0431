package origin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golivestream/live/internal/httpserve"
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
		{"GET", "/live/", 404, "no such object", ""},
		{"GET", "/live/demo/", 404, "no such object", ""},
		{"GET", "/live/demo/a/b/c/d/e", 404, "no such object", ""},
		{"HEAD", "/nope", 404, "", ""},
		{"GET", "/live/demo/index.m3u8", 404, "no such stream", ""},
		{"GET", "/live/demo/x.txt", 404, "no such object", ""},
		// One spelling per object (#18 B): no second copy in a cache.
		{"GET", "/live/demo/mx5p2ya4/v0/0086.m4s", 404, "no such object", ""},
		{"GET", "/live/demo/mx5p2ya4/v0/%38%36.m4s", 404, "no such object", ""},
		{"GET", "/live/de%6Do/index.m3u8", 404, "no such object", ""},
		{"GET", "/live/demo/mx5p2ya4/v0/86.m4s", 404, "no such stream", ""},
		{"GET", "/live/demo/index.m3u8?t=" + strings.Repeat("x", 4096), 414, "URI too long", ""},
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

// TestManyRanges: a Range header of up to httpserve.MaxRanges ranges gets
// its parts; beyond, the whole segment, not a multipart answer many times
// its size (#18 G: 15 000 ranges of one byte made 1.89 MB of a 60 KB
// segment).
func TestManyRanges(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	publishAudio(t, srv, "r", 48000, 4)
	seg := "/live/r/" + srv.stream("r").epoch + "/a0/0.m4s"
	whole := mustFetch(t, srv, seg)
	for _, tc := range []struct{ ranges, code int }{{1, 206}, {httpserve.MaxRanges, 206}, {httpserve.MaxRanges + 1, 200}, {15000, 200}} {
		spec := make([]string, tc.ranges)
		for i := range spec {
			spec[i] = "0-0"
		}
		req := httptest.NewRequest(http.MethodGet, seg, nil)
		req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%d ranges: %d, want %d", tc.ranges, rec.Code, tc.code)
		}
		if tc.code == 200 && !bytes.Equal(rec.Body.Bytes(), whole) {
			t.Errorf("%d ranges: %d bytes, want the whole %d", tc.ranges, rec.Body.Len(), len(whole))
		}
	}
}

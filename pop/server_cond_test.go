package pop

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConditionalRequests: a PoP answers conditional requests from its
// cache as the origin does with http.ServeContent (304, 412 or the body),
// for the tags and dates CDN edges and players revalidate with. Each case
// asks the origin itself and the PoP (through its fast path) and compares.
func TestConditionalRequests(t *testing.T) {
	body := randomBody(50 << 10)
	modTime := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "video/mp4")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		if !strings.HasSuffix(r.URL.Path, "/2.m4s") {
			h.Set("ETag", `"seg-1"`)
		} else {
			h.Set("ETag", `W/"seg-1"`)
		}
		http.ServeContent(w, r, "", modTime, bytes.NewReader(body))
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	before := modTime.Add(-time.Hour).Format(http.TimeFormat)
	at := modTime.Format(http.TimeFormat)
	after := modTime.Add(time.Hour).Format(http.TimeFormat)

	for _, tc := range []struct {
		name   string
		path   string
		header []string // name, value pairs
		want   int
	}{
		{"none", "/live/s/e/v0/1.m4s", nil, 200},
		{"if-none-match, same tag", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `"seg-1"`}, 304},
		{"if-none-match, weak form", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `W/"seg-1"`}, 304},
		{"if-none-match, in a list", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `"a", "seg-1" ,"b"`}, 304},
		{"if-none-match, other tags", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `"a", "seg-2"`}, 200},
		{"if-none-match, star", "/live/s/e/v0/1.m4s", []string{"If-None-Match", "*"}, 304},
		{"if-none-match, weak etag", "/live/s/e/v0/2.m4s", []string{"If-None-Match", `"seg-1"`}, 304},
		{"if-modified-since, at", "/live/s/e/v0/1.m4s", []string{"If-Modified-Since", at}, 304},
		{"if-modified-since, after", "/live/s/e/v0/1.m4s", []string{"If-Modified-Since", after}, 304},
		{"if-modified-since, before", "/live/s/e/v0/1.m4s", []string{"If-Modified-Since", before}, 200},
		{"if-modified-since, malformed", "/live/s/e/v0/1.m4s", []string{"If-Modified-Since", "yesterday"}, 200},
		{"if-none-match wins over if-modified-since", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `"x"`, "If-Modified-Since", after}, 200},
		{"if-match, same tag", "/live/s/e/v0/1.m4s", []string{"If-Match", `"seg-1"`}, 200},
		{"if-match, other tag", "/live/s/e/v0/1.m4s", []string{"If-Match", `"x"`}, 412},
		{"if-match, weak etag", "/live/s/e/v0/2.m4s", []string{"If-Match", `W/"seg-1"`}, 412},
		{"if-unmodified-since, before", "/live/s/e/v0/1.m4s", []string{"If-Unmodified-Since", before}, 412},
		{"if-unmodified-since, after", "/live/s/e/v0/1.m4s", []string{"If-Unmodified-Since", after}, 200},
		{"304 before range", "/live/s/e/v0/1.m4s", []string{"If-None-Match", `"seg-1"`, "Range", "bytes=0-9"}, 304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ask := func(url string) (*http.Response, []byte) {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i+1 < len(tc.header); i += 2 {
					req.Header.Set(tc.header[i], tc.header[i+1])
				}
				return doAll(t, c, req)
			}
			want, wantBody := ask(origin.URL + tc.path)
			got, gotBody := ask(base + tc.path)
			if want.StatusCode != tc.want {
				t.Fatalf("the origin (http.ServeContent) answered %d, the test expects %d", want.StatusCode, tc.want)
			}
			if got.StatusCode != want.StatusCode || !bytes.Equal(gotBody, wantBody) {
				t.Errorf("PoP: %d with %d bytes; origin: %d with %d bytes", got.StatusCode, len(gotBody), want.StatusCode, len(wantBody))
			}
			for _, h := range []string{"Etag", "Last-Modified", "Content-Type", "Cache-Control"} {
				if g, w := got.Header.Get(h), want.Header.Get(h); g != w {
					t.Errorf("%s: PoP %q, origin %q", h, g, w)
				}
			}
		})
	}
}

package pop

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
)

func TestCacheKey(t *testing.T) {
	keep := defaultQueryKeys()
	for _, tc := range []struct {
		uri  string
		keep []string
		want string
	}{
		{"/live/s/e/v0/7.m4s", keep, "/live/s/e/v0/7.m4s"},
		{"/live/s/e/v0/7.m4s?token=abc", keep, "/live/s/e/v0/7.m4s"},
		{"/live/s/e/v0/7.m4s?_=1700000000", keep, "/live/s/e/v0/7.m4s"},
		{"/live/s/e/v0/index.m3u8?token=x&_HLS_part=2&_HLS_msn=9", keep, "/live/s/e/v0/index.m3u8?_HLS_msn=9&_HLS_part=2"},
		{"/live/s/e/v0/index.m3u8?_HLS_msn=9&_HLS_part=2", keep, "/live/s/e/v0/index.m3u8?_HLS_msn=9&_HLS_part=2"},
		{"/live/s/e/v0/index.m3u8?%5FHLS_msn=9", keep, "/live/s/e/v0/index.m3u8?%5FHLS_msn=9"},
		{"/live/s/e/v0/index.m3u8?_HLS_msn=9", []string{}, "/live/s/e/v0/index.m3u8"},
		{"/live/s/e/v0/index.m3u8?a=1&b=2&c", []string{"c", "a"}, "/live/s/e/v0/index.m3u8?a=1&c"},
		{"/live/s/e/v0/index.m3u8?bad=%zz&_HLS_skip=YES", keep, "/live/s/e/v0/index.m3u8?_HLS_skip=YES"},
		{"/live/a%20b/e/v0/7.m4s?token=1", keep, "/live/a%20b/e/v0/7.m4s"},
	} {
		u, err := url.ParseRequestURI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		if got := cacheKey(u, tc.keep); got != tc.want {
			t.Errorf("cacheKey(%s, %v) = %s, want %s", tc.uri, tc.keep, got, tc.want)
		}
	}
}

// TestQueryTokensShareOneFetch: viewers whose segment URLs carry their own
// token (or a cache buster) still share one origin fetch, through one node
// and through three, and the origin is asked without the token. The HLS
// delivery directives are kept: they name another playlist.
func TestQueryTokensShareOneFetch(t *testing.T) {
	const n = 200
	const path = "/live/s/e1/v0/7.m4s"
	for _, nodes := range []int{1, 3} {
		t.Run(strconv.Itoa(nodes)+" nodes", func(t *testing.T) {
			body := randomBody(100 << 10)
			release := make(chan struct{})
			origin := newStubOrigin(t, gated(body, release))
			bases := startNodes(t, nodes, Config{Origins: []string{origin.URL}})
			c := newClient()

			headers, results := make(chan struct{}, n), make(chan error, n)
			for i := range n {
				go func() {
					resp, err := c.Get(bases[i%nodes] + path + "?token=viewer" + strconv.Itoa(i))
					headers <- struct{}{}
					if err != nil {
						results <- err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err == nil && !bytes.Equal(b, body) {
						err = io.ErrUnexpectedEOF
					}
					results <- err
				}()
			}
			for range n {
				<-headers // every request is now reading the same fill
			}
			close(release)
			for range n {
				if err := <-results; err != nil {
					t.Fatal(err)
				}
			}
			if got := origin.uris(); !slices.Equal(got, []string{path}) {
				t.Errorf("origin was asked for %d URIs (%v ...), want only %s once", len(got), got[:min(len(got), 3)], path)
			} else if c := origin.count(path); c != 1 {
				t.Errorf("origin saw %d requests, want 1", c)
			}
		})
	}

	t.Run("HLS directives", func(t *testing.T) {
		origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=1")
			w.Write([]byte("#EXTM3U\n# " + r.URL.RawQuery + "\n"))
		})
		_, base := startPoP(t, Config{Origins: []string{origin.URL}})
		const pl = "/live/s/e1/v0/index.m3u8"
		for _, q := range []string{"_HLS_msn=4&_HLS_part=1&token=a", "token=b&_HLS_part=1&_HLS_msn=4", "_HLS_msn=5", "token=c"} {
			resp, err := http.Get(base + pl + "?" + q)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		want := []string{pl, pl + "?_HLS_msn=4&_HLS_part=1", pl + "?_HLS_msn=5"}
		if got := origin.uris(); !slices.Equal(got, want) {
			t.Errorf("origin was asked for %v, want %v", got, want)
		}
		for _, u := range want {
			if c := origin.count(u); c != 1 {
				t.Errorf("origin saw %s %d times, want once", u, c)
			}
		}
	})
}

// uris returns the request URIs the origin saw, sorted.
func (o *stubOrigin) uris() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.counts))
}

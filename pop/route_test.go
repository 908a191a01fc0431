package pop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// windowOrigin serves the rendition /live/s/e/v0/ with a live playlist
// listing segments 10 to 19, segments up to 21 (the origin holds the next
// ones), and 404 for the rest.
func windowOrigin(t *testing.T) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/index.m3u8") {
			w.Header().Set("Cache-Control", "public, max-age=1, "+TTLDirective+"=500")
			var b strings.Builder
			b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"init.mp4\"\n")
			for n := 10; n < 20; n++ {
				fmt.Fprintf(&b, "#EXTINF:1.00000,\n%d.m4s\n", n)
			}
			io.WriteString(w, b.String())
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:], ".m4s"))
		if err != nil || n > 21 {
			w.Header().Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fmt.Fprintf(w, "segment %d", n)
	})
}

// total is how many requests the origin saw, and those whose URI
// contains part.
func (o *stubOrigin) total(part string) (all, matching int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for uri, n := range o.counts {
		all += n
		if strings.Contains(uri, part) {
			matching += n
		}
	}
	return all, matching
}

// clientFrom is an HTTP client whose connections come from the loopback
// address local.
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
}

func getStatus(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, b := doAll(t, c, req)
	return resp.StatusCode, string(b), resp.Header
}

// TestURLVariants: the spellings of one object that the probe of #18 B
// used each made a cache entry and an origin fetch of their own. Now a
// query on a segment is dropped, non-canonical spellings and shapes no
// object has are answered by the PoP, segments far past the window a
// manifest listed are never fetched, and delivery directives keep their
// canonical form on playlists only.
func TestURLVariants(t *testing.T) {
	origin := windowOrigin(t)
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	if code, _, _ := getStatus(t, c, base+"/live/s/e/v0/index.m3u8"); code != 200 {
		t.Fatalf("playlist: %d", code)
	}

	t.Run("query on a segment", func(t *testing.T) {
		for i := range 300 {
			code, body, _ := getStatus(t, c, base+"/live/s/e/v0/15.m4s?_HLS_msn="+strconv.Itoa(i)+"&_HLS_part=1&_HLS_skip=YES&token="+strconv.Itoa(i))
			if code != 200 || body != "segment 15" {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		if _, n := origin.total("15.m4s"); n != 1 {
			t.Errorf("origin saw %d requests for segment 15, want 1", n)
		}
	})

	t.Run("spellings and shapes", func(t *testing.T) {
		before, _ := origin.total("")
		for _, p := range []string{
			"/live/s/e/v0/0015.m4s", "/live/s/e/v0/%31%35.m4s", "/live/s/e/v0/1%35.m4s", "/live/%73/e/v0/15.m4s",
			"/live/s/E/v0/15.m4s", "/live/s/0e/v0/15.m4s", "/live/s/e/v00/15.m4s", "/live/s/e/V0/15.m4s",
			"/live/s/e/v0/15.m4s/", "/live/s/e/v0/15.mp4", "/live/s/e/v0/+15.m4s", "/live/s/e/v0//15.m4s",
			"/live/s.x/index.m3u8", "/live/s/e/index.m3u8", "/live/s/e/v0/x/15.m4s", "/live/s/e/v0/init.m4s",
		} {
			code, _, h := getStatus(t, c, base+p)
			if code != http.StatusNotFound || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %d, Cache-Control %q; want 404, no-store", p, code, h.Get("Cache-Control"))
			}
		}
		if after, _ := origin.total(""); after != before {
			t.Errorf("origin saw %d requests for them, want none", after-before)
		}
	})

	t.Run("far ahead", func(t *testing.T) {
		before, _ := origin.total("")
		for range 200 {
			n := 19 + aheadSlack + 1 + rand.IntN(1_000_000_000)
			if code, _, _ := getStatus(t, c, base+"/live/s/e/v0/"+strconv.Itoa(n)+".m4s"); code != http.StatusNotFound {
				t.Fatalf("segment %d: %d, want 404", n, code)
			}
		}
		if after, _ := origin.total(""); after != before {
			t.Errorf("origin saw %d requests for segments far ahead, want none", after-before)
		}
	})

	t.Run("directives on a playlist", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			code  int
			sent  string // what the origin saw, "" for nothing
		}{
			{"_HLS_msn=15", 200, ""}, // listed already: the playlist this PoP has
			{"_HLS_msn=15&_HLS_part=2&token=abc", 200, ""},
			{"_HLS_msn=012", 400, ""},
			{"_HLS_part=1", 400, ""},
			{"_HLS_skip=yes", 400, ""},
			{"_HLS_msn=100000", 400, ""},
			{"token=x&_HLS_part=0&_HLS_msn=20", 200, "/live/s/e/v0/index.m3u8?_HLS_msn=20&_HLS_part=0"},
			{"_HLS_skip=YES&x=1", 200, "/live/s/e/v0/index.m3u8?_HLS_skip=YES"},
		} {
			_, before := origin.total("index.m3u8?")
			code, _, _ := getStatus(t, c, base+"/live/s/e/v0/index.m3u8?"+tc.query)
			if code != tc.code {
				t.Errorf("?%s: %d, want %d", tc.query, code, tc.code)
			}
			_, after := origin.total("index.m3u8?")
			switch {
			case tc.sent == "" && after != before:
				t.Errorf("?%s: the origin was asked with a query", tc.query)
			case tc.sent != "" && origin.count(tc.sent) != 1:
				t.Errorf("?%s: the origin saw %q %d times, want once", tc.query, tc.sent, origin.count(tc.sent))
			}
		}
	})
}

// TestMissBudget: a client asking for objects no manifest listed (random
// segment numbers of a rendition never listed) costs at most its budget
// of origin fetches, then gets 429; another client still gets in, and
// objects a manifest listed never count.
func TestMissBudget(t *testing.T) {
	origin := windowOrigin(t)
	const burst = 5
	_, base := startPoP(t, Config{Origins: []string{origin.URL}, MissRate: 1, MissBurst: burst})
	attacker, viewer := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	if code, _, _ := getStatus(t, viewer, base+"/live/s/e/v0/index.m3u8"); code != 200 {
		t.Fatalf("playlist: %d", code)
	}
	start := time.Now()
	refused := 0
	for i := range 200 {
		code, _, h := getStatus(t, attacker, base+"/live/s/e/v9/"+strconv.Itoa(i)+".m4s")
		if code == http.StatusTooManyRequests {
			refused++
			if h.Get("Retry-After") == "" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("429 without Retry-After or no-store: %v", h)
			}
		}
	}
	elapsed := time.Since(start)
	_, fetched := origin.total("/v9/")
	if limit := burst + int(elapsed.Seconds()) + 1; fetched > limit {
		t.Errorf("200 requests for unlisted segments in %v made %d origin fetches, want at most %d", elapsed, fetched, limit)
	}
	if refused < 200-burst-int(elapsed.Seconds())-1 {
		t.Errorf("%d of 200 refused", refused)
	}
	// Another address, and what a manifest listed, are not held back.
	if code, _, _ := getStatus(t, viewer, base+"/live/s/e/v9/1000.m4s"); code != http.StatusNotFound {
		t.Errorf("another client: %d, want the origin's 404", code)
	}
	if code, _, _ := getStatus(t, attacker, base+"/live/s/e/v0/index.m3u8"); code != 200 {
		t.Errorf("the playlist: %d", code)
	}
	for n := 10; n < 20; n++ {
		if code, _, _ := getStatus(t, attacker, base+"/live/s/e/v0/"+strconv.Itoa(n)+".m4s"); code != 200 {
			t.Errorf("listed segment %d: %d", n, code)
		}
	}
}

// TestPassThroughClientGone: a client leaving during a request passed
// through to the origin is counted, not logged as a failure (#18 G: one
// WARN line per such request).
func TestPassThroughClientGone(t *testing.T) {
	arrived := make(chan struct{})
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // answers nothing until the PoP gives up
	})
	var logged []slog.Record
	var mu sync.Mutex
	s, err := New(Config{Origins: []string{origin.URL}, Logger: slog.New(recordHandler(func(r slog.Record) {
		mu.Lock()
		logged = append(logged, r)
		mu.Unlock()
	}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	req := httptest.NewRequest(http.MethodGet, "/api/streams", nil).WithContext(ctx)
	s.ServeHTTP(httptest.NewRecorder(), req) // returns once the pass-through gave up
	if n := counterValue(s.metrics.clientGone); n != 1 {
		t.Errorf("live_pop_client_gone_total = %v, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range logged {
		if r.Level >= slog.LevelWarn {
			t.Errorf("logged %v %q for a client that left", r.Level, r.Message)
		}
	}
}

// recordHandler is a slog.Handler passing every record to f.
type recordHandler func(slog.Record)

func (recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h(r)
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

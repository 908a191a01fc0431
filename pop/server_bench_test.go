package pop

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkServeHit measures the proxy layer's own cost for a cache hit on
// a 600-byte playlist, without the network (see bench/pop for wrk runs).
func BenchmarkServeHit(b *testing.B) {
	body := strings.Repeat("#EXTINF:1.00000,\n1.m4s\n", 27)[:600]
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Write([]byte(body))
	}))
	defer origin.Close()
	s, err := New(Config{Origins: []string{origin.URL}})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/live/s/e/v0/index.m3u8", nil)
	s.ServeHTTP(httptest.NewRecorder(), req) // fill
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		clear(w.header)
		w.code, w.n = 0, 0
		s.ServeHTTP(w, req)
		if w.code != 200 || w.n != 600 {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// discardWriter is a reusable http.ResponseWriter that keeps the status
// and counts the body, so that the allocations reported are the
// handler's own, not a recorder's.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

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
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.Len() != 600 {
			b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
		}
	}
}

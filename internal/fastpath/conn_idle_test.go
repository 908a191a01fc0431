package fastpath

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestFastPathIdleHoldsNoBuffer: a keep-alive connection waiting for its
// next request holds no read buffer (readBuffer, 4 KiB): it went back to
// the listener's pool with the last request's bytes read. Both ends of
// an idle connection cost the heap about 4 KiB here without it, 8 KiB
// with it.
func TestFastPathIdleHoldsNoBuffer(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector's allocations blur the heap's size; test.sh runs this without it")
	}
	const conns = 400
	body := strings.Repeat("x", 100)
	sv := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}, Config{})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	var resp [512]byte
	for range conns {
		c, err := net.Dial("tcp", sv.addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		io.WriteString(c, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
		n, err := c.Read(resp[:]) // the whole response comes in one read here
		if err != nil || !strings.HasSuffix(string(resp[:n]), body) {
			t.Fatalf("response %q: %v", resp[:n], err)
		}
	}
	per := float64(heap()-before) / conns
	t.Logf("%.0f bytes of heap per idle connection, both ends", per)
	if per > 6<<10 {
		t.Errorf("%.0f bytes of heap per idle connection: one holds its read buffer", per)
	}
}

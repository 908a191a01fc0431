package pop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLoadViewers: viewers are distinct address and User-Agent pairs
// that asked for live objects within the window; ports, other paths and
// requests forwarded by peers do not count.
func TestLoadViewers(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write([]byte("#EXTM3U\n"))
	})
	const peer = "http://127.0.0.1:1"
	s, err := New(Config{Origins: []string{origin.URL}, Peers: []string{"http://self", peer}, Self: "http://self"})
	if err != nil {
		t.Fatal(err)
	}
	type req struct {
		remote, ua, path, hop string
	}
	tests := []struct {
		name string
		reqs []req
		want int
	}{
		{"one client, two connections", []req{
			{remote: "192.0.2.1:1000", ua: "p", path: "/live/s/index.m3u8"},
			{remote: "192.0.2.1:1001", ua: "p", path: "/live/s/e/v0/index.m3u8"},
		}, 1},
		{"two players behind one address", []req{
			{remote: "192.0.2.1:1000", ua: "hls.js"},
			{remote: "192.0.2.1:1001", ua: "dash.js"},
		}, 2},
		{"IPv6 and IPv4, no User-Agent", []req{
			{remote: "[2001:db8::1]:443"},
			{remote: "[2001:db8::2]:443"},
			{remote: "192.0.2.9:80"},
		}, 3},
		{"not a live object", []req{
			{remote: "192.0.2.1:1000", path: "/api/streams"},
			{remote: "192.0.2.2:1000", path: "/healthz"},
		}, 0},
		{"forwarded by a peer", []req{
			{remote: "192.0.2.1:1000", hop: peer},
		}, 0},
		{"a client claiming to be a peer it is not", []req{
			{remote: "192.0.2.1:1000", hop: "http://stranger"},
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Load(time.Nanosecond) // forget the previous case
			for _, rq := range tt.reqs {
				if rq.path == "" {
					rq.path = "/live/s/index.m3u8"
				}
				r := httptest.NewRequest(http.MethodGet, rq.path, nil)
				r.RemoteAddr = rq.remote
				if rq.ua != "" {
					r.Header.Set("User-Agent", rq.ua)
				}
				if rq.hop != "" {
					r.Header.Set(HopHeader, rq.hop)
				}
				s.ServeHTTP(httptest.NewRecorder(), r)
			}
			if got := s.Load(time.Hour).Viewers; got != tt.want {
				t.Errorf("Viewers = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLoadWindow: clients not seen within the window are forgotten.
func TestLoadWindow(t *testing.T) {
	m := newLoadMeter()
	for _, remote := range []string{"192.0.2.1:1", "192.0.2.2:1"} {
		r := httptest.NewRequest(http.MethodGet, "/live/s/index.m3u8", nil)
		r.RemoteAddr = remote
		m.seen(r, time.Now())
	}
	if got := m.load(time.Hour).Viewers; got != 2 {
		t.Fatalf("within the window: %d viewers, want 2", got)
	}
	if got := m.load(time.Nanosecond).Viewers; got != 0 {
		t.Fatalf("past the window: %d viewers, want 0", got)
	}
	if got := m.load(time.Hour).Viewers; got != 0 {
		t.Fatalf("forgotten clients came back: %d viewers", got)
	}
}

// TestLoadFullShard: a full shard forgets expired clients to make room,
// and counts no new client while every one it holds is active.
func TestLoadFullShard(t *testing.T) {
	tests := []struct {
		name  string
		stamp int64 // of the clients filling the shard
		want  bool  // whether the new client is counted
	}{
		{"full of expired clients", -int64(time.Hour), true},
		{"full of active clients", 1 << 62, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newLoadMeter()
			r := httptest.NewRequest(http.MethodGet, "/live/s/index.m3u8", nil)
			h := m.client(r)
			sh := &m.shards[h%viewerShards]
			for i := range maxShardViewers {
				sh.seen[h+uint64(i+1)*viewerShards] = tt.stamp
			}
			m.seen(r, time.Now())
			if _, got := sh.seen[h]; got != tt.want {
				t.Errorf("new client counted: %v, want %v", got, tt.want)
			}
			if len(sh.seen) > maxShardViewers {
				t.Errorf("shard holds %d clients, bound %d", len(sh.seen), maxShardViewers)
			}
		})
	}
}

// TestLoadBytesServed: bytes served count bodies, a miss's and a hit's,
// not headers; the client counts once.
func TestLoadBytesServed(t *testing.T) {
	body := randomBody(100 << 10)
	origin := newStubOrigin(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body)
	})
	s, base := startPoP(t, Config{Origins: []string{origin.URL}})
	for _, want := range []string{"miss", "hit"} {
		// The PoP counts a body once it is written, so the client may
		// have it all before the count: with Connection: close, the
		// PoP's end of the connection closes once its handler returned.
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\nConnection: close\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		raw, err := io.ReadAll(conn) // to the PoP's close
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != int64(len(body)) || resp.Header.Get("X-Cache") != want {
			t.Fatalf("read %d bytes (%v), X-Cache %q; want %d, %s", n, err, resp.Header.Get("X-Cache"), len(body), want)
		}
	}
	got := s.Load(0)
	if want := int64(2 * len(body)); got.BytesServed != want {
		t.Errorf("BytesServed = %d, want %d", got.BytesServed, want)
	}
	if got.Viewers != 1 {
		t.Errorf("Viewers = %d, want 1", got.Viewers)
	}
}

// BenchmarkLoadSeen measures what counting a viewer adds to each request
// (BenchmarkServeHit includes it), with requests from 1000 clients.
func BenchmarkLoadSeen(b *testing.B) {
	m := newLoadMeter()
	reqs := make([]*http.Request, 1000)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/live/s/index.m3u8", nil)
		reqs[i].RemoteAddr = fmt.Sprintf("10.0.%d.%d:40000", i/256, i%256)
		reqs[i].Header.Set("User-Agent", "hls.js")
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.seen(reqs[i%len(reqs)], now)
			i++
		}
	})
}

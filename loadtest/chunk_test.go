package loadtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBox returns an ISO BMFF box of type typ around payload.
func testBox(typ string, payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

// fullBox returns a full box's payload start: version and flags.
func fullBox(version byte, flags uint32) []byte {
	return []byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// testMoof returns a moof as our packager writes one: mfhd, then a traf of
// tfhd, tfdt (version 1) and a trun with data offset and, unless def is
// set, a duration and size per sample (def: tfhd's default duration).
func testMoof(tfdt uint64, durations []uint32, def uint32) []byte {
	tfhd := append(fullBox(0, 0x020000), u32(1)...)
	if def > 0 {
		tfhd = append(append(fullBox(0, 0x020008), u32(1)...), u32(def)...)
	}
	flags := uint32(0x01 | 0x100 | 0x200)
	if def > 0 {
		flags = 0x01 | 0x200
	}
	trun := append(fullBox(0, flags), u32(uint32(len(durations)))...)
	trun = append(trun, u32(0)...) // data offset
	for _, d := range durations {
		if def == 0 {
			trun = append(trun, u32(d)...)
		}
		trun = append(trun, u32(1000)...) // size
	}
	return testBox("moof",
		testBox("mfhd", fullBox(0, 0), u32(1)),
		testBox("traf",
			testBox("tfhd", tfhd),
			testBox("tfdt", fullBox(1, 0), binary.BigEndian.AppendUint64(nil, tfdt)),
			testBox("trun", trun)))
}

// testSegment returns a segment of n chunks of 8 frames of 3000 ticks
// (90 kHz, 30 fps) from tfdt, styp first and a prft before each moof, and
// each chunk's bytes.
func testSegment(tfdt uint64, n int) ([]byte, [][]byte) {
	var seg []byte
	var chunks [][]byte
	durs := []uint32{3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000}
	for i := range n {
		var c []byte
		if i == 0 {
			c = append(c, testBox("styp", []byte("cmfs"), u32(0))...)
		}
		c = append(c, testBox("prft", make([]byte, 16))...)
		c = append(c, testMoof(tfdt+uint64(i)*24000, durs, 0)...)
		c = append(c, testBox("mdat", bytes.Repeat([]byte{byte(i)}, 20_000+i))...)
		seg = append(seg, c...)
		chunks = append(chunks, c)
	}
	return seg, chunks
}

func TestMoofTiming(t *testing.T) {
	for _, tc := range []struct {
		name       string
		moof       []byte
		start, dur uint64
		ok         bool
	}{
		{"per-sample durations", testMoof(900000, []uint32{3000, 3000, 3003}, 0), 900000, 9003, true},
		{"default duration", testMoof(1<<40, []uint32{1, 1, 1, 1}, 1024), 1 << 40, 4096, true},
		{"tfdt version 0", testBox("moof", testBox("traf",
			testBox("tfdt", fullBox(0, 0), u32(48000)),
			testBox("trun", fullBox(0, 0x100), u32(2), u32(1024), u32(1024)))), 48000, 2048, true},
		{"no tfdt", testBox("moof", testBox("traf", testBox("trun", fullBox(0, 0x100), u32(1), u32(5)))), 0, 0, false},
		{"no trun", testBox("moof", testBox("traf", testBox("tfdt", fullBox(0, 0), u32(1)))), 0, 0, false},
		{"no duration anywhere", testBox("moof", testBox("traf",
			testBox("tfdt", fullBox(0, 0), u32(1)), testBox("trun", fullBox(0, 0), u32(3)))), 0, 0, false},
		{"samples beyond the box", testBox("moof", testBox("traf",
			testBox("tfdt", fullBox(0, 0), u32(1)), testBox("trun", fullBox(0, 0x100), u32(1000), u32(5)))), 0, 0, false},
		{"not a moof", testBox("mdat", []byte("x")), 0, 0, false},
		{"truncated", testMoof(5, []uint32{1}, 0)[:40], 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, dur, ok := moofTiming(tc.moof)
			if ok != tc.ok || ok && (start != tc.start || dur != tc.dur) {
				t.Errorf("moofTiming = %d, %d, %v; want %d, %d, %v", start, dur, ok, tc.start, tc.dur, tc.ok)
			}
		})
	}
}

// chunkLog is a chunkSink that keeps each chunk's timing, and signals it.
type chunkLog struct {
	mu     sync.Mutex
	starts []uint64
	durs   []uint64
	got    chan struct{} // one send per chunk when not nil
}

func (c *chunkLog) chunk(moof []byte) {
	start, dur, ok := moofTiming(moof)
	if !ok {
		start, dur = 0, 0
	}
	c.mu.Lock()
	c.starts, c.durs = append(c.starts, start), append(c.durs, dur)
	c.mu.Unlock()
	if c.got != nil {
		c.got <- struct{}{}
	}
}

// checkChunks checks that log saw the chunks of testSegment(tfdt, n).
func checkChunks(t *testing.T, log *chunkLog, tfdt uint64, n int) {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.starts) != n {
		t.Fatalf("%d chunks, want %d", len(log.starts), n)
	}
	for i := range n {
		if log.starts[i] != tfdt+uint64(i)*24000 || log.durs[i] != 24000 {
			t.Errorf("chunk %d: tfdt %d, %d ticks", i, log.starts[i], log.durs[i])
		}
	}
}

// chunkedHTTP frames body as HTTP chunks of size bytes (RFC 9112 7.1).
func chunkedHTTP(body []byte, size int) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(size, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	return b.String() + "0\r\n\r\n"
}

// TestWalkChunksFraming reads a segment's chunks through each HTTP
// framing, HTTP chunks cutting across boxes, with the lane and with
// net/http; the connection is kept when the framing allows it.
func TestWalkChunksFraming(t *testing.T) {
	seg, _ := testSegment(90000*3600*30, 4) // 30 hours into the timeline
	for _, tc := range []struct {
		name  string
		resp  string
		close bool
	}{
		{"content-length", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(seg), seg), false},
		{"chunked, 1000-byte chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHTTP(seg, 1000), false},
		{"chunked, 7-byte chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHTTP(seg, 7), false},
		{"until close", "HTTP/1.0 200 OK\r\n\r\n" + string(seg), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRawServer(t, func(*http.Request) (string, bool) { return tc.resp, tc.close })
			base := mustParse(t, srv.URL+"/live/s/e/v0/manifest.mpd")
			l := testLane(t.Context(), 5*time.Second)
			defer l.close()
			g := &netHTTPGetter{ctx: t.Context(), r: &run{Generator: &Generator{cfg: Config{RequestTimeout: 5 * time.Second}, client: http.DefaultClient}}, ua: "test"}
			for i, get := range []getter{l, l, g} {
				log := &chunkLog{}
				_, _, n, err := get.do(getRequest{base: base, ref: "7.m4s", sink: log})
				if err != nil || n != int64(len(seg)) {
					t.Fatalf("request %d: %d bytes, %v; want %d", i, n, err, len(seg))
				}
				checkChunks(t, log, 90000*3600*30, 4)
			}
			if want := map[bool]int64{false: 2, true: 3}[tc.close]; srv.conns.Load() != want {
				t.Errorf("%d connections, want %d", srv.conns.Load(), want)
			}
		})
	}
	t.Run("cut short", func(t *testing.T) {
		srv := startRawServer(t, func(*http.Request) (string, bool) {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(seg), seg[:len(seg)/2]), true
		})
		l := testLane(t.Context(), 5*time.Second)
		defer l.close()
		if _, _, _, err := l.do(getRequest{base: mustParse(t, srv.URL+"/s.m4s"), sink: &chunkLog{}}); kindOf(err) != "aborted" {
			t.Errorf("%v, want aborted", err)
		}
	})
	t.Run("not boxes", func(t *testing.T) {
		srv := startRawServer(t, func(*http.Request) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n\x00\x00\x00\x04moof1234", false
		})
		l := testLane(t.Context(), 5*time.Second)
		defer l.close()
		if _, _, _, err := l.do(getRequest{base: mustParse(t, srv.URL+"/s.m4s"), sink: &chunkLog{}}); kindOf(err) != "aborted" {
			t.Errorf("%v, want aborted", err)
		}
	})
}

// TestChunksAsTheyArrive: a segment being produced is read chunk by
// chunk as the server sends them, as dash.js does in low-latency mode:
// the server sends the next chunk only once the player has the one
// before.
func TestChunksAsTheyArrive(t *testing.T) {
	const n = 4
	_, chunks := testSegment(0, n)
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i, c := range chunks {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			w.Write(c)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	base := mustParse(t, srv.URL+"/live/s/e/v0/manifest.mpd")
	l := testLane(t.Context(), 10*time.Second)
	defer l.close()
	g := &netHTTPGetter{ctx: t.Context(), r: &run{Generator: &Generator{cfg: Config{RequestTimeout: 10 * time.Second}, client: srv.Client()}}, ua: "test"}
	for name, get := range map[string]getter{"lane": l, "nethttp": g} {
		t.Run(name, func(t *testing.T) {
			log := &chunkLog{got: make(chan struct{})}
			done := make(chan error, 1)
			go func() {
				_, _, _, err := get.do(getRequest{base: base, ref: "7.m4s", sink: log})
				done <- err
			}()
			for i := range n {
				select {
				case <-log.got:
				case err := <-done:
					t.Fatalf("the request ended after %d chunks: %v", i, err)
				}
				if i < n-1 {
					next <- struct{}{}
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			checkChunks(t, log, 0, n)
		})
	}
}

// FuzzMoofTiming: moofs come from the network.
func FuzzMoofTiming(f *testing.F) {
	f.Add(testMoof(900000, []uint32{3000, 3000}, 0))
	f.Add(testMoof(7, []uint32{1, 1, 1}, 1024))
	f.Add(testBox("moof", testBox("traf", testBox("trun", fullBox(0, 0x100), u32(1000), u32(5)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		moofTiming(b)
	})
}

// FuzzWalkChunks: segment bodies come from the network; whatever their
// bytes, the walk ends, reads no more than there is, and gives the sink
// only whole chunks.
func FuzzWalkChunks(f *testing.F) {
	seg, _ := testSegment(0, 2)
	f.Add(seg)
	f.Add(seg[:100])
	f.Add([]byte("\x00\x00\x00\x01mdat\x00\x00\x00\x00\x00\x00\x00\x10"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var hdr [16]byte
		var moof []byte
		r := &readerBody{r: bytes.NewReader(b), bufs: &sync.Pool{}}
		n, err := walkChunks(r, &hdr, &moof, &chunkLog{})
		if n > int64(len(b)) || err == nil && n != int64(len(b)) {
			t.Fatalf("%d of %d bytes read, %v", n, len(b), err)
		}
	})
}

// TestLowLatencyRequestsDoNotAllocate: a blocking playlist reload (its
// directives in the player's buffer, the body in the track's) and a
// segment read chunk by chunk allocate nothing on a kept connection, as
// the lane's other requests. The server allocates nothing either:
// AllocsPerRun counts every goroutine's.
func TestLowLatencyRequestsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates: run without -race")
	}
	seg, _ := testSegment(0, 4)
	playlist := "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n0.m4s\n"
	plResp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(playlist), playlist))
	segResp := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHTTP(seg, 5000))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // one connection: read each request head, answer by its path
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		n := 0
		for {
			i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if i < 0 {
				m, err := c.Read(buf[n:])
				if err != nil {
					return
				}
				n += m
				continue
			}
			resp := segResp
			if bytes.Contains(buf[:i], []byte(".m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES ")) {
				resp = plResp
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
			n = copy(buf, buf[i+4:n])
		}
	}()
	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	base := mustParse(t, "http://"+ln.Addr().String()+"/live/s/e/v0/index.m3u8")
	query := []byte("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")
	buf := make([]byte, 0, 4096)
	log := &chunkLog{starts: make([]uint64, 0, 1000), durs: make([]uint64, 0, 1000)}
	for _, c := range []struct {
		name string
		rq   getRequest
	}{
		{"blocking reload", getRequest{base: base, query: query, keep: true, buf: buf}},
		{"chunks", getRequest{base: base, ref: "7.m4s", sink: log}},
	} {
		var body []byte
		var err error
		if body, _, _, err = l.do(c.rq); err != nil || c.rq.keep && string(body) != playlist {
			t.Fatalf("%s: %q, %v", c.name, body, err)
		}
		if n := testing.AllocsPerRun(50, func() { _, _, _, err = l.do(c.rq) }); n != 0 || err != nil {
			t.Errorf("%s: %v allocations per request, %v", c.name, n, err)
		}
	}
	// Once before AllocsPerRun, once for its warm-up, 50 times counted.
	if len(log.starts) != 4*52 {
		t.Errorf("%d chunks read, want %d", len(log.starts), 4*52)
	}
}

package pop

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// box returns an ISO BMFF box of type typ with n payload bytes of value v.
func box(typ string, n int, v byte) []byte {
	b := make([]byte, 8, 8+n)
	binary.BigEndian.PutUint32(b, uint32(8+n))
	copy(b[4:], typ)
	return append(b, bytes.Repeat([]byte{v}, n)...)
}

// chunkedSegment returns a segment of parts moof+mdat (the first preceded
// by styp), and each part's bytes.
func chunkedSegment(parts int) ([]byte, [][]byte) {
	var seg []byte
	var out [][]byte
	for i := range parts {
		var p []byte
		if i == 0 {
			p = append(p, box("styp", 12, 0)...)
		}
		p = append(p, box("moof", 100+i, byte(i))...)
		p = append(p, box("mdat", 1000*(i+1), byte(i+10))...)
		seg = append(seg, p...)
		out = append(out, p)
	}
	return seg, out
}

func TestPartSpan(t *testing.T) {
	seg, parts := chunkedSegment(3)
	off := 0
	for p, want := range parts {
		from, to, found, err := partSpan(seg, p, true)
		if !found || err != nil || from != off || to != off+len(want) {
			t.Errorf("part %d: [%d, %d) %v %v, want [%d, %d)", p, from, to, found, err, off, off+len(want))
		}
		// Arriving: found once its last byte is there, not before.
		if _, _, found, err := partSpan(seg[:off+len(want)-1], p, false); found || err != nil {
			t.Errorf("part %d with its last byte missing: found %v, %v", p, found, err)
		}
		off += len(want)
	}
	if _, _, _, err := partSpan(seg, 3, true); err != errNoPart {
		t.Errorf("part 3 of 3: %v, want errNoPart", err)
	}
	for _, bad := range [][]byte{{0, 0, 0, 4, 'm', 'o', 'o', 'f'}, {0, 0, 0, 0, 'm', 'd', 'a', 't'}, {0, 0, 0, 200, 'm', 'd', 'a', 't'}} {
		if _, _, _, err := partSpan(bad, 0, true); err != errNoPart {
			t.Errorf("malformed %x: %v, want errNoPart", bad, err)
		}
	}
}

// FuzzPartSpan: segments come from upstream; whatever their bytes, a
// span found lies within them and holds at least a box.
func FuzzPartSpan(f *testing.F) {
	seg, _ := chunkedSegment(3)
	f.Add(seg, 1, true)
	f.Add(seg[:50], 0, false)
	f.Fuzz(func(t *testing.T, b []byte, p int, over bool) {
		if p < 0 || p > 1000 {
			return
		}
		from, to, found, _ := partSpan(b, p, over)
		if found && !(0 <= from && from+8 <= to && to <= len(b)) {
			t.Fatalf("span [%d, %d) of %d bytes", from, to, len(b))
		}
	})
}

// TestPartsFromSegment: LL-HLS parts are answered from their segment,
// which is fetched once for the parts and the whole-segment requests
// alike, while it arrives; a part the segment does not have is 404.
func TestPartsFromSegment(t *testing.T) {
	seg, parts := chunkedSegment(4)
	release := make(chan struct{})
	origin := newStubOrigin(t, gated(seg, release))
	for _, nodes := range []int{1, 3} {
		t.Run(strconv.Itoa(nodes)+" nodes", func(t *testing.T) {
			bases := startNodes(t, nodes, Config{Origins: []string{origin.URL}})
			dir := "/live/s/e" + strconv.Itoa(nodes) + "/v0/"
			c := newClient()
			var wg sync.WaitGroup
			got := make([][]byte, len(parts)+1)
			codes := make([]int, len(parts)+1)
			for i := range got {
				wg.Go(func() {
					path := dir + "7." + strconv.Itoa(i) + ".m4s"
					if i == len(parts) {
						path = dir + "7.m4s"
					}
					req, _ := http.NewRequest(http.MethodGet, bases[i%len(bases)]+path, nil)
					resp, b := doAll(t, c, req)
					codes[i], got[i] = resp.StatusCode, b
				})
			}
			close(release)
			wg.Wait()
			release = make(chan struct{})
			for i, want := range parts {
				if codes[i] != 200 || !bytes.Equal(got[i], want) {
					t.Errorf("part %d: %d, %d bytes, want 200 and its %d bytes", i, codes[i], len(got[i]), len(want))
				}
			}
			if !bytes.Equal(got[len(parts)], seg) {
				t.Errorf("the segment: %d bytes, want %d", len(got[len(parts)]), len(seg))
			}
			if n := origin.count(dir + "7.m4s"); n != 1 {
				t.Errorf("origin fetches of the segment: %d, want 1", n)
			}
			if _, n := origin.total(".m4s"); n == 0 {
				t.Fatal("no fetch counted")
			}
			req, _ := http.NewRequest(http.MethodGet, bases[0]+dir+"7.4.m4s", nil)
			if resp, _ := doAll(t, c, req); resp.StatusCode != http.StatusNotFound {
				t.Errorf("part 4 of 4: %d, want 404", resp.StatusCode)
			}
		})
	}
}

// TestBlockingReloadsCoalesced: a thousand players blocking on the same
// playlist update (_HLS_msn, _HLS_part) through one node make one
// upstream request, and all get its answer, within moments of it.
func TestBlockingReloadsCoalesced(t *testing.T) {
	const n = 1000
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // held until the part exists, as the origin does
		case <-release:
		case <-r.Context().Done():
			return
		}
		// Cached long enough for the herd's late requests too: under
		// load some reach the node after the answer came.
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write([]byte("#EXTM3U\n#EXT-X-PART:DURATION=0.25,URI=\"13.2.m4s\"\n"))
	})
	const path = "/live/s/e/v0/index.m3u8?_HLS_msn=13&_HLS_part=2"
	var s *Server
	t.Run("herd", func(t *testing.T) { // its node stops at its end
		var base string
		s, base = startPoP(t, Config{Origins: []string{origin.URL}})
		headers, bodies, errs := herd(t, newClient(), []string{base}, path, n)
		<-arrived
		close(release)
		want := "#EXTM3U\n#EXT-X-PART:DURATION=0.25,URI=\"13.2.m4s\"\n"
		for range n {
			<-headers
			select {
			case b := <-bodies:
				if string(b) != want {
					t.Fatalf("an answer differs: %q", b)
				}
			case err := <-errs:
				t.Fatal(err)
			}
		}
		if got := origin.count(path); got != 1 {
			t.Errorf("%d upstream requests for %d blocking reloads, want 1", got, n)
		}
	})
	// Those that waited for the answer (at least the one that asked,
	// held by the origin until released) were counted; the node has
	// stopped, its handlers are done.
	var m dto.Metric
	if err := s.metrics.release[releasePlaylist].(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() < 1 || h.GetSampleCount() > n || h.GetSampleSum() >= float64(h.GetSampleCount())*10 {
		t.Errorf("live_pop_waiter_release_seconds{class=\"playlist\"}: %d samples summing to %v s; want 1 to %d, each well under 10 s", h.GetSampleCount(), h.GetSampleSum(), n)
	}
}

// TestPlaylistHintingServedPartDropped: a media playlist the node holds
// whose preload hint names a part the node has just served is stale: a
// player that reloads it without a blocking request (gohlslib) gets a
// newer one, not the same hint again (it would play the part twice).
// A part before the hint leaves the playlist cached.
func TestPlaylistHintingServedPartDropped(t *testing.T) {
	seg, _ := chunkedSegment(4)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60") // held until dropped
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-VERSION:9\n#EXT-X-PART-INF:PART-TARGET=0.25\n" +
				"#EXTINF:1,\n6.m4s\n#EXT-X-PART:DURATION=0.25,URI=\"7.0.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"7.1.m4s\"\n"))
			return
		}
		w.Write(seg)
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	const dir = "/live/s/e/v0/"
	for _, pl := range []string{"index.m3u8", "index.m3u8?_HLS_skip=YES"} {
		t.Run(pl, func(t *testing.T) {
			get := func(path string) {
				t.Helper()
				if code, _, _ := getStatus(t, c, base+dir+path); code != 200 {
					t.Fatalf("%s: %d", path, code)
				}
			}
			get(pl)
			get(pl)
			if n := origin.count(dir + pl); n != 1 {
				t.Fatalf("origin fetches of the playlist: %d, want 1 (cached)", n)
			}
			get("7.0.m4s") // before the hint: the playlist stays
			get(pl)
			if n := origin.count(dir + pl); n != 1 {
				t.Errorf("after a part before the hint: %d origin fetches of the playlist, want 1", n)
			}
			get("7.1.m4s") // the hinted part, there at once
			get(pl)
			if n := origin.count(dir + pl); n != 2 {
				t.Errorf("after the hinted part: %d origin fetches of the playlist, want 2", n)
			}
		})
	}
}

// TestBlockingAnswerIsCurrent: the answer to a blocking reload is the
// rendition's current playlist too (and a blocking delta update its
// current delta update): a plain reload after it is answered from the
// node, with no fetch. It never replaces a newer playlist the node
// holds, nor one without a hint (an ended stream's).
func TestBlockingAnswerIsCurrent(t *testing.T) {
	const dir = "/live/s/e/v0/"
	playlist := func(hint string, ended bool) string {
		b := "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-VERSION:9\n#EXT-X-PART-INF:PART-TARGET=0.25\n" +
			"#EXTINF:1,\n6.m4s\n#EXT-X-PART:DURATION=0.25,URI=\"7.0.m4s\"\n"
		if ended {
			return b + "#EXT-X-ENDLIST\n"
		}
		return b + "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"" + hint + "\"\n"
	}
	for _, tc := range []struct {
		name string
		// current is what the origin answers a plain reload, "" for
		// none asked before the blocking one.
		current  string
		blocking string // the query of the blocking reload
		plain    string // the query of the reload after it
		offered  bool   // whether the blocking answer is filed as current
		want     string // what the reload after it gets
	}{
		{"after a blocking reload", "", "_HLS_msn=7&_HLS_part=1", "", true, playlist("7.2.m4s", false)},
		{"delta update", "", "_HLS_msn=7&_HLS_part=1&_HLS_skip=YES", "_HLS_skip=YES", true, playlist("7.2.m4s", false)},
		{"older current replaced", playlist("7.1.m4s", false), "_HLS_msn=7&_HLS_part=1", "", true, playlist("7.2.m4s", false)},
		{"newer current kept", playlist("7.3.m4s", false), "_HLS_msn=7&_HLS_part=1", "", false, playlist("7.3.m4s", false)},
		{"ended kept", playlist("", true), "_HLS_msn=7&_HLS_part=1", "", false, playlist("", true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=60")
				if r.URL.Query().Has("_HLS_msn") {
					w.Write([]byte(playlist("7.2.m4s", false)))
					return
				}
				w.Write([]byte(tc.current))
			})
			s, base := startPoP(t, Config{Origins: []string{origin.URL}})
			c := newClient()
			plainKey := dir + "index.m3u8"
			if tc.plain != "" {
				plainKey += "?" + tc.plain
			}
			fetches := 0
			if tc.current != "" {
				if code, _, _ := getStatus(t, c, base+plainKey); code != 200 {
					t.Fatalf("%s: %d", plainKey, code)
				}
				awaitFiled(t, s, plainKey, func(*object) bool { return true })
				fetches = 1
			}
			blockingKey := dir + "index.m3u8?" + tc.blocking
			if code, _, _ := getStatus(t, c, base+blockingKey); code != 200 {
				t.Fatalf("blocking reload: %d", code)
			}
			if tc.offered {
				// Filed by the node once the answer is complete.
				awaitFiled(t, s, plainKey, func(o *object) bool { return o.hint.Load() == partOrder(7, 2) })
			} else {
				// Once the node has seen the answer whole, offered
				// again: what the node did then, it does now.
				b := awaitFiled(t, s, blockingKey, func(o *object) bool { return o.hint.Load() != 0 })
				s.offerCurrent(b)
			}
			code, body, _ := getStatus(t, c, base+plainKey)
			if code != 200 || body != tc.want {
				t.Errorf("%s after the blocking reload: %d %q, want %q", plainKey, code, body, tc.want)
			}
			if n := origin.count(plainKey); n != fetches {
				t.Errorf("origin fetches of %s: %d, want %d", plainKey, n, fetches)
			}
		})
	}
}

// awaitFiled waits until s's local cache holds key complete and ready
// says so of it, and returns it. It polls the cache: nothing else tells
// of what the fill's goroutine does once the answer is out.
func awaitFiled(t *testing.T, s *Server, key string, ready func(*object) bool) *object {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	sh := s.local.shard(key)
	for {
		sh.mu.Lock()
		o, ok := sh.lru.Peek(key)
		sh.mu.Unlock()
		if ok && ready(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not filed within 5 s", key)
		}
		time.Sleep(time.Millisecond)
	}
}

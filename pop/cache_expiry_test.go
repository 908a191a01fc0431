package pop

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// notFoundOrigin answers every request 404, as our origin answers an
// expired or unknown segment.
func notFoundOrigin(t *testing.T) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "segment expired", http.StatusNotFound)
	})
}

// fetchMissing asks base for n segments that do not exist.
func fetchMissing(t *testing.T, base string, n int) {
	t.Helper()
	c := newClient()
	for i := range n {
		resp, err := c.Get(base + "/live/s/e/v0/" + strconv.Itoa(1000000+i) + ".m4s")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
	}
}

// TestNegativeCacheCharge: a cached 404 is charged at least what it holds
// in the heap, so that -cache-bytes bounds the memory of many small
// objects too (#18 E: they were charged a sixth of it). Not by much more
// either: that would evict segments for nothing.
func TestNegativeCacheCharge(t *testing.T) {
	const n = 4000
	// Random segments no manifest listed: no miss budget here.
	s, base := startPoP(t, Config{Origins: []string{notFoundOrigin(t).URL}, MissRate: -1, NegativeTTL: time.Hour})
	fetchMissing(t, base, 10) // the connections and buffers of the first requests
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	charged := s.CacheSize()
	fetchMissing(t, base, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	charge := (s.CacheSize() - charged) / n
	t.Logf("a cached 404 holds %d bytes of heap and is charged %d", heap, charge)
	if charge < heap || charge > 3*heap {
		t.Errorf("a cached 404 holds %d bytes of heap and is charged %d: want a charge between 1 and 3 times the heap", heap, charge)
	}
}

// TestExpiredDropped: 404s and playlists leave the cache once of no use,
// instead of staying until the byte bound evicts them (#18 E); segments
// stay.
func TestExpiredDropped(t *testing.T) {
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/live/s/e/v0/1.m4s":
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Write(randomBody(1000))
		case "/live/s/e/v0/index.m3u8":
			w.Header().Set("Cache-Control", "public, max-age=1, "+TTLDirective+"=500")
			w.Write([]byte("#EXTM3U\n"))
		default:
			http.NotFound(w, r)
		}
	})
	s, base := startPoP(t, Config{Origins: []string{origin.URL}, MissRate: -1, NegativeTTL: time.Minute})
	fetchMissing(t, base, 100)
	fetchAll(t, newClient(), base+"/live/s/e/v0/index.m3u8")
	fetchAll(t, newClient(), base+"/live/s/e/v0/1.m4s")
	now := time.Now()
	if n := s.local.dropExpired(now); n != 0 {
		t.Errorf("dropped %d objects before they expired", n)
	}
	// The playlist may stand in for a failed refresh for one more
	// lifetime: it goes after it.
	if n := s.local.dropExpired(now.Add(time.Second + 100*time.Millisecond)); n != 1 {
		t.Errorf("dropped %d objects after the playlist's stale lifetime, want 1", n)
	}
	if n := s.local.dropExpired(now.Add(time.Minute + time.Second)); n != 100 {
		t.Errorf("dropped %d objects after the 404s' lifetime, want 100", n)
	}
	_, seg := s.local.shard("/live/s/e/v0/1.m4s").lookup("/live/s/e/v0/1.m4s", now, false)
	if seg == nil {
		t.Fatal("the segment was dropped")
	}
	if got, want := s.CacheSize(), seg.cost(); got != want {
		t.Errorf("cache holds %d bytes, want the segment's %d", got, want)
	}
}

package pop

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		path string
		want class
	}{
		{"/live/s/index.m3u8", classPlaylist},
		{"/live/s/e/v0/index.m3u8", classPlaylist},
		{"/live/s/manifest.mpd", classManifest},
		{"/live/s/e/v0/init.mp4", classInit},
		{"/live/s/e/v0/12.m4s", classSegment},
		{"/live/s/e/v0/12.ts", classOther},
		{"/live/s/e/v0/012.m4s", classOther},
		{"/api/streams", classOther},
		{"/time", classOther},
		{"/", classOther},
		{"/live/s/notes.txt", classOther},
	} {
		if got := classify(tc.path); got != tc.want {
			t.Errorf("classify(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

var freshnessCases = []struct {
	class   class
	status  int
	cc      []string
	ttl     time.Duration
	cacheOK bool
}{
	{classSegment, 200, []string{"public, max-age=31536000, immutable"}, 31536000 * time.Second, true},
	{classPlaylist, 200, []string{"public, max-age=1, live-ttl-ms=500"}, 500 * time.Millisecond, true},
	{classPlaylist, 200, []string{"max-age=0"}, 100 * time.Millisecond, true},
	{classPlaylist, 200, []string{"max-age=2", "s-maxage=1"}, time.Second, true},
	{classPlaylist, 200, nil, 100 * time.Millisecond, true},
	{classSegment, 200, nil, 24 * time.Hour, true},
	{classPlaylist, 200, []string{"no-store"}, 100 * time.Millisecond, false},
	{classSegment, 200, []string{"private, max-age=60"}, 60 * time.Second, false},
	{classSegment, 404, []string{"no-store"}, 500 * time.Millisecond, true},
	{classSegment, 500, []string{"max-age=60"}, 0, false},
	{classPlaylist, 200, []string{"max-age=abc, live-ttl-ms=\"250\""}, 250 * time.Millisecond, true},
	{classPlaylist, 200, []string{"MAX-AGE=3"}, 3 * time.Second, true},
}

func TestParseFreshness(t *testing.T) {
	for i, tc := range freshnessCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			h := http.Header{"Cache-Control": tc.cc}
			got := parseFreshness(tc.class, h, tc.status, 100*time.Millisecond, 500*time.Millisecond)
			if got.ttl != tc.ttl || got.cacheable != tc.cacheOK {
				t.Errorf("%v %d %q: got ttl %v cacheable %v, want %v %v", tc.class, tc.status, tc.cc, got.ttl, got.cacheable, tc.ttl, tc.cacheOK)
			}
		})
	}
}

// FuzzParseFreshness: whatever an upstream sends as Cache-Control, the
// lifetime is never below the floor and parsing never panics.
func FuzzParseFreshness(f *testing.F) {
	for _, tc := range freshnessCases {
		for _, v := range tc.cc {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, cc string) {
		got := parseFreshness(classPlaylist, http.Header{"Cache-Control": {cc}}, 200, time.Millisecond, time.Second)
		if got.ttl < time.Millisecond {
			t.Fatalf("%q: ttl %v below the floor", cc, got.ttl)
		}
	})
}

func TestRing(t *testing.T) {
	nodes := []string{"http://a:1", "http://b:1", "http://c:1"}
	r1, r2 := newRing(nodes, 64), newRing(slices.Clone(nodes), 64)
	counts := map[string]int{}
	for i := range 3000 {
		k := "/live/s/e/v0/" + strconv.Itoa(i) + ".m4s"
		o := r1.get(k)
		if o != r2.get(k) {
			t.Fatalf("two rings built from the same nodes disagree on %s", k)
		}
		counts[o]++
	}
	for _, n := range nodes {
		if c := counts[n]; c < 600 || c > 1400 {
			t.Errorf("node %s owns %d of 3000 keys; the spread is too uneven: %v", n, c, counts)
		}
	}
	// Removing a node moves only its keys.
	r3 := newRing(nodes[:2], 64)
	for i := range 3000 {
		k := "/live/s/e/v0/" + strconv.Itoa(i) + ".m4s"
		if o := r1.get(k); o != nodes[2] && r3.get(k) != o {
			t.Fatalf("key %s moved from %s though its node stayed", k, o)
		}
	}
	if newRing(nil, 64).get("x") != "" {
		t.Error("an empty ring owns keys")
	}
}

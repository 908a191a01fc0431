package pop

import (
	"os"
	"slices"
	"testing"
)

func TestLastAndNext(t *testing.T) {
	for _, tc := range []struct {
		key, uri string
		want     []string
	}{
		{"/live/s/e/v0/index.m3u8", "41.m4s", []string{"/live/s/e/v0/41.m4s", "/live/s/e/v0/42.m4s"}},
		{"/live/s/manifest.mpd", "e/a0/9.m4s", []string{"/live/s/e/a0/9.m4s", "/live/s/e/a0/10.m4s"}},
		{"/live/s/e/v0/index.m3u8", "seg_099.ts", []string{"/live/s/e/v0/seg_099.ts", "/live/s/e/v0/seg_100.ts"}},
		{"/live/s/e/v0/index.m3u8", "last.m4s", []string{"/live/s/e/v0/last.m4s"}},
		{"/live/s/e/v0/index.m3u8", "http://elsewhere/1.m4s", nil},
		{"/live/s/e/v0/index.m3u8", "../../x/3.m4s", []string{"/live/s/x/3.m4s", "/live/s/x/4.m4s"}},
	} {
		if got := lastAndNext(tc.key, tc.uri); !slices.Equal(got, tc.want) {
			t.Errorf("lastAndNext(%q, %q) = %q, want %q", tc.key, tc.uri, got, tc.want)
		}
	}
}

// TestNextFromManifests reads the golden playlists and MPDs of the origin.
func TestNextFromManifests(t *testing.T) {
	pl, err := os.ReadFile("../testdata/golden/live_v0.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nextFromPlaylist("/live/cam1/mf0epoch/v0/index.m3u8", pl),
		[]string{"/live/cam1/mf0epoch/v0/7.m4s", "/live/cam1/mf0epoch/v0/8.m4s"}; !slices.Equal(got, want) {
		t.Errorf("playlist: %q, want %q", got, want)
	}
	ended, err := os.ReadFile("../testdata/golden/ended_v0.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if got := nextFromPlaylist("/live/cam1/mf0epoch/v0/index.m3u8", ended); got != nil {
		t.Errorf("ended playlist: %q, want nothing", got)
	}
	m, err := os.ReadFile("../testdata/golden/live_manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/live/cam1/mf0epoch/v0/7.m4s", "/live/cam1/mf0epoch/v0/8.m4s",
		"/live/cam1/mf0epoch/a0/7.m4s", "/live/cam1/mf0epoch/a0/8.m4s",
	}
	if got := nextFromMPD("/live/cam1/manifest.mpd", m); !slices.Equal(got, want) {
		t.Errorf("MPD: %q, want %q", got, want)
	}
}

// FuzzNextFromManifests: manifests come from upstream; whatever they hold,
// parsing them for prefetches never panics and names only local paths.
func FuzzNextFromManifests(f *testing.F) {
	for _, name := range []string{"live_v0.m3u8", "live_index.m3u8", "live_manifest.mpd", "ended_manifest.mpd"} {
		b, err := os.ReadFile("../testdata/golden/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range append(nextFromPlaylist("/live/s/e/v0/index.m3u8", b), nextFromMPD("/live/s/manifest.mpd", b)...) {
			if len(k) == 0 || k[0] != '/' {
				t.Fatalf("prefetch key %q is not a local path", k)
			}
		}
	})
}

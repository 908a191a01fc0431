package pop

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/golivestream/live/internal/layout"
)

// TestManifestWindows reads the golden playlists and MPDs of the origin.
func TestManifestWindows(t *testing.T) {
	pl, err := os.ReadFile("../testdata/golden/live_v0.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	ws, ended, _ := playlistWindows("/live/cam1/mf0epoch/v0/index.m3u8", pl)
	if want := []window{{"/live/cam1/mf0epoch/v0/", 0, 7}}; !slices.Equal(ws, want) || ended {
		t.Errorf("playlist: %v, ended %v; want %v, live", ws, ended, want)
	}
	endedPL, err := os.ReadFile("../testdata/golden/ended_v0.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if _, ended, _ := playlistWindows("/live/cam1/mf0epoch/v0/index.m3u8", endedPL); !ended {
		t.Errorf("ended playlist: not ended")
	}
	bridged, err := os.ReadFile("../testdata/golden/bridged_v0.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if ws, _, _ := playlistWindows("/live/cam1/mf0epoch/v0/index.m3u8", bridged); len(ws) < 2 {
		t.Errorf("bridged playlist: windows %v, want one per epoch", ws)
	}
	m, err := os.ReadFile("../testdata/golden/live_manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	want := []window{{"/live/cam1/mf0epoch/v0/", 0, 7}, {"/live/cam1/mf0epoch/a0/", 0, 7}}
	if got, dynamic := mpdWindows("/live/cam1/manifest.mpd", m); !slices.Equal(got, want) || !dynamic {
		t.Errorf("MPD: %v, %v, want %v, dynamic", got, dynamic, want)
	}
	// A low-latency MPD's open timeline (a last S of @r -1) announces the
	// segment being produced: it counts as one segment, the last listed,
	// not as a window without end.
	producing, err := os.ReadFile("../testdata/golden/producing_manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	want = []window{{"/live/cam1/mf0epoch/v0/", 0, 8}, {"/live/cam1/mf0epoch/a0/", 0, 8}}
	if got, dynamic := mpdWindows("/live/cam1/manifest.mpd", producing); !slices.Equal(got, want) || !dynamic {
		t.Errorf("MPD with open timelines: %v, %v, want %v, dynamic", got, dynamic, want)
	}
	endedMPD, err := os.ReadFile("../testdata/golden/ended_manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	if got, dynamic := mpdWindows("/live/cam1/manifest.mpd", endedMPD); got != nil || dynamic {
		t.Errorf("ended MPD: %v, %v, want nothing", got, dynamic)
	}
	// The same static MPD as a VOD's, its files under /live/: its windows
	// count.
	vod := bytes.ReplaceAll(endedMPD, []byte(`media="mf0epoch/`), []byte(`media="../../../live/cam1/mf0epoch/`))
	if got, dynamic := mpdWindows("/vod/cam1/mf0epoch/manifest.mpd", vod); len(got) != 2 || dynamic {
		t.Errorf("VOD MPD: %v, %v, want two windows, static", got, dynamic)
	}
	if got := segmentKey("/live/s/e/v0/", 42); got != "/live/s/e/v0/42.m4s" {
		t.Errorf("segmentKey = %q", got)
	}
}

// FuzzNextFromManifests: manifests come from upstream; whatever they hold,
// parsing them for prefetches never panics and names only local paths.
func FuzzNextFromManifests(f *testing.F) {
	for _, name := range []string{"live_v0.m3u8", "live_index.m3u8", "live_manifest.mpd", "producing_manifest.mpd", "ended_manifest.mpd"} {
		b, err := os.ReadFile("../testdata/golden/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, _, _ := playlistWindows("/live/s/e/v0/index.m3u8", b)
		live, _ := mpdWindows("/live/s/manifest.mpd", b)
		vod, _ := mpdWindows("/vod/s/e/manifest.mpd", b)
		for _, w := range append(append(ws, live...), vod...) {
			if _, ok := layout.Parse(segmentKey(w.dir, w.last)); !ok || w.first > w.last {
				t.Fatalf("window %v names no segment of the layout", w)
			}
		}
	})
}

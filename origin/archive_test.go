package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/dirstore"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/mpdtest"
)

// archiveKit is an archive in a directory with its writer running.
type archiveKit struct {
	store store.Store
	w     *archive.Writer
}

func newArchiveKit(t *testing.T) *archiveKit {
	t.Helper()
	st, err := dirstore.New(dirstore.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := archive.NewWriter(archive.WriterConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &archiveKit{store: st, w: w}
}

// flush waits until what was queued is written.
func (k *archiveKit) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := k.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// resolve returns the path a relative URI in the manifest at base leads to.
func resolve(t *testing.T, base, uri string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(u).Path
}

// mediaPlaylistAt parses the media playlist at p.
func mediaPlaylistAt(t *testing.T, srv *Server, p string) *playlist.Media {
	t.Helper()
	var pl playlist.Media
	if err := pl.Unmarshal(mustFetch(t, srv, p)); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &pl
}

// TestArchiveVOD: a stream (source video, a ladder rendition, audio) is
// archived as it runs; once it ended, its VOD lists every segment of
// every rendition, and an origin that never saw it (a restart) serves
// them from the archive, byte for byte as they were live, at the same
// URLs, through its HLS playlists and its static MPD.
func TestArchiveVOD(t *testing.T) {
	k := newArchiveKit(t)
	srv, err := New(Config{Archive: k.w, ArchiveStore: k.store})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f := publishFeed(t, srv, "cam", time.Second, true)
	f.run(8*time.Second, 0, f.rung(0, 0))
	st := srv.stream("cam")
	vod := "/vod/cam/" + st.epoch + "/"
	if code, _ := fetch(srv, vod+"index.m3u8"); code != http.StatusNotFound {
		t.Errorf("VOD of a live epoch: %d, want 404", code)
	}
	f.sess.Close()
	k.flush(t)

	// What was live, by path.
	live := map[string][]byte{}
	for _, r := range st.snap.Load().renditions {
		dir := "/live/cam/" + st.epoch + "/" + r.id + "/"
		live[dir+"init.mp4"] = r.init.body
		for _, e := range r.entries {
			live[dir+segmentPath(e.seg.Number)] = e.seg.Data
		}
	}

	// A new origin on the same archive: everything from the store.
	later, err := New(Config{ArchiveStore: k.store})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	for _, o := range []*Server{srv, later} {
		var mv playlist.Multivariant
		if err := mv.Unmarshal(mustFetch(t, o, vod+"index.m3u8")); err != nil {
			t.Fatal(err)
		}
		uris := []string{}
		for _, v := range mv.Variants {
			uris = append(uris, v.URI)
		}
		for _, r := range mv.Renditions {
			uris = append(uris, *r.URI)
		}
		if len(uris) != 3 {
			t.Fatalf("VOD multivariant playlist lists %v, want v0, v1 and a0", uris)
		}
		got := 0
		for _, uri := range uris {
			p := resolve(t, vod+"index.m3u8", uri)
			pl := mediaPlaylistAt(t, o, p)
			if !pl.Endlist || pl.PlaylistType == nil || *pl.PlaylistType != playlist.MediaPlaylistTypeVOD {
				t.Errorf("%s: not a VOD playlist", p)
			}
			files := []string{resolve(t, p, pl.Map.URI)}
			for _, s := range pl.Segments {
				files = append(files, resolve(t, p, s.URI))
			}
			for _, file := range files {
				want, ok := live[file]
				if !ok {
					t.Errorf("%s lists %s, which was never live", p, file)
					continue
				}
				if body := mustFetch(t, o, file); !bytes.Equal(body, want) {
					t.Errorf("%s: %d bytes, not the %d that were live", file, len(body), len(want))
				}
				got++
			}
		}
		if got != len(live) {
			t.Errorf("the VOD lists %d files, %d were live", got, len(live))
		}
		mpd := mustFetch(t, o, vod+"manifest.mpd")
		mpdtest.Validate(t, mpd)
		if !bytes.Contains(mpd, []byte(`type="static"`)) || !bytes.Contains(mpd, []byte(`media="../../../live/cam/`+st.epoch+`/$RepresentationID$/$Number$.m4s"`)) {
			t.Errorf("VOD MPD:\n%s", mpd)
		}
	}
	rec := httptest.NewRecorder()
	later.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/live/cam/"+st.epoch+"/v0/3.m4s", nil))
	if h := rec.Header(); h.Get("ETag") != segmentETag(st.epoch, "v0", 3) || !strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Errorf("archived segment headers: %v", h)
	}

	var list struct{ VODs []VODInfo }
	if err := json.Unmarshal(mustFetch(t, later, "/api/vods"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.VODs) != 1 {
		t.Fatalf("/api/vods: %+v", list)
	}
	v := list.VODs[0]
	if v.Stream != "cam" || v.Epoch != st.epoch || !v.Ended || len(v.Renditions) != 3 || v.Duration < 7 || v.Duration > 8.5 || v.HLS != vod+"index.m3u8" {
		t.Errorf("/api/vods: %+v", v)
	}
}

// TestDVRWindow: with a memory window of 3 s and a DVR window of 10 s,
// the DVR playlist and MPD describe the last 10 s; the segments that
// left memory come from the archive, as they were. The live playlists
// keep their window.
func TestDVRWindow(t *testing.T) {
	k := newArchiveKit(t)
	srv, err := New(Config{Window: 3 * time.Second, DVR: 10 * time.Second, Archive: k.w, ArchiveStore: k.store})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f := publishFeed(t, srv, "dvr", time.Second, true)
	st := srv.stream("dvr")
	seen := map[string][]byte{}
	for range 20 {
		f.run(time.Second, 0)
		for _, r := range st.snap.Load().renditions {
			for _, e := range r.entries {
				seen[fmt.Sprintf("/live/dvr/%s/%s/%d.m4s", st.epoch, r.id, e.seg.Number)] = e.seg.Data
			}
		}
	}
	k.flush(t)

	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustFetch(t, srv, "/live/dvr/dvr.m3u8")); err != nil {
		t.Fatal(err)
	}
	p := resolve(t, "/live/dvr/dvr.m3u8", mv.Variants[0].URI)
	if want := "/live/dvr/" + st.epoch + "/v0/dvr.m3u8"; p != want {
		t.Fatalf("DVR variant %s, want %s", p, want)
	}
	pl := mediaPlaylistAt(t, srv, p)
	live := mediaPlaylistAt(t, srv, "/live/dvr/"+st.epoch+"/v0/index.m3u8")
	if pl.Endlist || len(pl.Segments) < 9 || len(pl.Segments) > 11 || len(live.Segments) > 4 {
		t.Errorf("DVR playlist: %d segments, ended %v; live: %d", len(pl.Segments), pl.Endlist, len(live.Segments))
	}
	if last := pl.Segments[len(pl.Segments)-1].URI; last != live.Segments[len(live.Segments)-1].URI {
		t.Errorf("DVR playlist ends at %s, the live one at %s", last, live.Segments[len(live.Segments)-1].URI)
	}
	for _, s := range pl.Segments {
		file := resolve(t, p, s.URI)
		if body := mustFetch(t, srv, file); !bytes.Equal(body, seen[file]) {
			t.Errorf("%s: not the bytes that were live", file)
		}
	}
	mpd := mustFetch(t, srv, "/live/dvr/dvr.mpd")
	mpdtest.Validate(t, mpd)
	if !bytes.Contains(mpd, []byte(`timeShiftBufferDepth="PT10S"`)) || !bytes.Contains(mpd, []byte(`type="dynamic"`)) {
		t.Errorf("DVR MPD:\n%s", mpd)
	}

	f.sess.Close()
	if pl := mediaPlaylistAt(t, srv, p); !pl.Endlist {
		t.Errorf("DVR playlist of an ended stream without ENDLIST")
	}
}

// TestClips: a clip cut by media time or by wall-clock time is a VOD of
// its own, of the segments it overlaps; deleting it removes it.
func TestClips(t *testing.T) {
	k := newArchiveKit(t)
	srv, err := New(Config{Archive: k.w, ArchiveStore: k.store})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f := publishFeed(t, srv, "clip", time.Second, true)
	f.run(10*time.Second, 0)
	st := srv.stream("clip")
	k.flush(t)

	for _, tc := range []struct {
		name, body string
		code       int
		from, to   uint64
	}{
		{"media time", `{"stream":"clip","from":2.5,"to":5}`, 201, 2, 4},
		{"wall clock", fmt.Sprintf(`{"stream":"clip","from":%q,"to":%q}`,
			st.ast.Add(1*time.Second).Format(time.RFC3339Nano), st.ast.Add(3*time.Second).Format(time.RFC3339Nano)), 201, 1, 2},
		{"epoch named", fmt.Sprintf(`{"stream":"clip","epoch":%q,"from":0,"to":1}`, st.epoch), 201, 0, 0},
		{"backwards", `{"stream":"clip","from":5,"to":2}`, 400, 0, 0},
		{"beyond the stream", `{"stream":"clip","from":500,"to":600}`, 422, 0, 0},
		{"no such stream", `{"stream":"nope","from":1,"to":2}`, 404, 0, 0},
		{"bad time", `{"stream":"clip","from":"yesterday","to":2}`, 400, 0, 0},
		{"not JSON", `stream=clip`, 400, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/clips", strings.NewReader(tc.body)))
			if rec.Code != tc.code {
				t.Fatalf("POST %s: %d %s, want %d", tc.body, rec.Code, rec.Body, tc.code)
			}
			if tc.code != 201 {
				return
			}
			var c ClipInfo
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatal(err)
			}
			if c.From != tc.from || c.To != tc.to || c.Epoch != st.epoch {
				t.Errorf("clip %+v, want segments %d to %d", c, tc.from, tc.to)
			}
			pl := mediaPlaylistAt(t, srv, path.Dir(c.HLS)+"/v0/index.m3u8")
			if n := len(pl.Segments); n != int(tc.to-tc.from+1) || pl.MediaSequence != int(tc.from) {
				t.Errorf("clip's video playlist: %d segments from %d", n, pl.MediaSequence)
			}
			for _, s := range pl.Segments {
				mustFetch(t, srv, resolve(t, path.Dir(c.HLS)+"/v0/index.m3u8", s.URI))
			}
			mpdtest.Validate(t, mustFetch(t, srv, c.DASH))
		})
	}

	var list struct{ Clips []ClipInfo }
	if err := json.Unmarshal(mustFetch(t, srv, "/api/clips"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Clips) != 3 {
		t.Fatalf("/api/clips lists %d clips, want 3", len(list.Clips))
	}
	c := list.Clips[0]
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/api/clips/"+c.ID, nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	if code, _ := fetch(srv, c.HLS); code != http.StatusNotFound {
		t.Errorf("a deleted clip: %d, want 404", code)
	}
}

package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/dirstore"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/archive/storetest"
	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/publisher"
)

// newDirStore is an archive store in a directory of the test, as
// -archive DIR makes it.
func newDirStore(t *testing.T) store.Store {
	t.Helper()
	st, err := dirstore.New(dirstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// flushArchive waits until the archive wrote what was queued.
func (a *testApp) flushArchive(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := a.archive.writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// archiveOrigin serves, until the test ends, an origin that never saw a
// stream, on the archive st: what it serves of an epoch comes from st.
func archiveOrigin(t *testing.T, st store.Store) string {
	t.Helper()
	org, err := origin.New(origin.Config{ArchiveStore: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(org.Close)
	return serveHTTP(t, org)
}

// files returns the media playlists (by rendition) that the
// multivariant playlist at mvURL lists, and the URL of every file each
// lists, its init segment first.
func files(t *testing.T, mvURL string) map[string][]string {
	t.Helper()
	base, err := url.Parse(mvURL)
	if err != nil {
		t.Fatal(err)
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(mustGet(t, mvURL)); err != nil {
		t.Fatalf("%s: %v", mvURL, err)
	}
	var uris []string
	for _, v := range mv.Variants {
		uris = append(uris, v.URI)
	}
	for _, r := range mv.Renditions {
		if r.URI != nil {
			uris = append(uris, *r.URI)
		}
	}
	out := map[string][]string{}
	for _, u := range uris {
		pu := resolveURL(t, base, u)
		var pl playlist.Media
		if err := pl.Unmarshal(mustGet(t, pu.String())); err != nil {
			t.Fatalf("%s: %v", pu, err)
		}
		fs := []string{resolveURL(t, pu, pl.Map.URI).String()}
		for _, s := range pl.Segments {
			fs = append(fs, resolveURL(t, pu, s.URI).String())
		}
		out[pu.String()] = fs
	}
	return out
}

func resolveURL(t *testing.T, base *url.URL, ref string) *url.URL {
	t.Helper()
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return base.ResolveReference(r)
}

// pathOf returns the path of a URL.
func pathOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Path
}

// vodList returns what GET /api/vods at base says; query, when not
// empty, is its query ("stream=NAME").
func vodList(t *testing.T, base string, query ...string) []origin.VODInfo {
	t.Helper()
	u := base + "/api/vods"
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	var body struct{ VODs []origin.VODInfo }
	if err := json.Unmarshal(mustGet(t, u), &body); err != nil {
		t.Fatal(err)
	}
	return body.VODs
}

// metricSum returns the sum of the samples of metric name in a /metrics
// exposition, whatever their labels.
func metricSum(exposition []byte, name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(string(exposition), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// TestArchiveStoreDown: the archive's store refuses every write for 10 s
// in the middle of a stream. The live stream goes on without a stall
// (its newest segment never waits more than three segment durations, and
// the edge moves on by at least 7 of the 10 segments meanwhile: a live
// edge waiting on the archive would stop for the whole outage; a late
// segment of the realtime publisher on a busy machine is up to ~2 s),
// and once the store is back, every segment the stream listed is in the
// archive, byte for byte: the queue held them meanwhile.
func TestArchiveStoreDown(t *testing.T) {
	dir := newDirStore(t)
	fault, st := storetest.Wrap(dir)
	a := startApp(t, Config{
		Origin:  origin.Config{Window: time.Minute},
		Archive: &Archive{Store: st, Writer: archive.WriterConfig{RetryMax: time.Second}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publishDemo(t, ctx, a, "down")
	waitFor(t, 20*time.Second, "3 segments", func() bool { return a.lastSegment(t, "down") >= 3 })

	fault.Fail(errors.New("injected: the archive's disk is unwritable"))
	if err := fault.AwaitAttempts(t.Context(), fault.Attempts()+1); err != nil {
		t.Fatal(err)
	}
	outage := time.NewTimer(10 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	first := a.lastSegment(t, "down")
	last, lastAt := first, time.Now()
	for wait := true; wait; {
		select {
		case <-outage.C:
			wait = false
		case now := <-tick.C: // the live edge, as a player sees it
			if n := a.lastSegment(t, "down"); n > last {
				last, lastAt = n, now
			} else if now.Sub(lastAt) > 3*time.Second {
				t.Fatalf("live stalled at segment %d for %v while the archive was down", last, now.Sub(lastAt))
			}
		}
	}
	tick.Stop()
	if last-first < 7 {
		t.Fatalf("live moved from segment %d to %d in the 10 s the archive was down", first, last)
	}
	fault.Release()
	waitFor(t, 20*time.Second, "4 more segments", func() bool { return a.lastSegment(t, "down") >= last+4 })
	cancel()
	a.waitEnded(t, "down", 20*time.Second)
	a.flushArchive(t)

	reader, err := archive.NewReader(archive.ReaderConfig{Store: dir})
	if err != nil {
		t.Fatal(err)
	}
	live := files(t, a.base+"/live/down/index.m3u8")
	n := 0
	for _, fs := range live {
		for _, f := range fs {
			o, ok := layout.Parse(pathOf(t, f))
			if !ok {
				t.Fatalf("%s: not of the layout", f)
			}
			e := archive.Entry{Rendition: o.Rendition, Kind: archive.KindSegment, Number: o.Number}
			if o.Kind == layout.Init {
				e = archive.Entry{Rendition: o.Rendition, Kind: archive.KindInit}
			}
			e, err := reader.Locate(t.Context(), o.Stream, o.Epoch, e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := reader.Object(t.Context(), o.Stream, o.Epoch, e, 0, -1)
			if err != nil {
				t.Errorf("%s not archived: %v", f, err)
				continue
			}
			if !bytes.Equal(got, mustGet(t, f)) {
				t.Errorf("%s archived with other bytes", f)
			}
			n++
		}
	}
	metrics := mustGet(t, a.base+"/metrics")
	errs, dropped := metricSum(metrics, "archive_write_errors_total"), metricSum(metrics, "archive_dropped_total")
	if errs == 0 || dropped != 0 {
		t.Errorf("archive_write_errors_total %v, archive_dropped_total %v; want failures and no drop", errs, dropped)
	}
	t.Logf("%d files archived in full after a 10-s outage (%v failed writes)", n, errs)
}

// TestArchiveRetention: past the retention, an ended epoch is deleted,
// unless a clip pins it: the clip plays on; once the clip is deleted,
// its epoch goes too. The clip API asks for the origin's bearer token
// (Config.APIToken): a request without it, or with another, makes or
// deletes nothing (401).
func TestArchiveRetention(t *testing.T) {
	st := newDirStore(t)
	a := startApp(t, Config{
		Origin:  origin.Config{ReconnectWindow: -1, APIToken: "clip-maker"},
		Archive: &Archive{Store: st, Retention: 4 * time.Second, SweepInterval: 200 * time.Millisecond},
	})
	// api sends a request of the clip API, with the bearer token auth
	// ("" for none), and returns its answer.
	api := func(method, path, body, auth string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// refused checks that a request without the token, or with another,
	// is answered 401.
	refused := func(method, path, body string) {
		t.Helper()
		for _, auth := range []string{"", "clip-make", "clip-makerr"} {
			resp := api(method, path, body, auth)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", method, path, auth, resp.StatusCode)
			}
		}
	}
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	publishOnce := func(name string) {
		t.Helper()
		if err := publisher.Publish(t.Context(), publisher.Config{URL: a.rtmp + name, Clip: clip, Loops: 1, Speed: 4}); err != nil {
			t.Fatal(err)
		}
		a.waitEnded(t, name, 10*time.Second)
		a.flushArchive(t)
	}
	publishOnce("kept")
	const clipReq = `{"stream":"kept","from":0,"to":2}`
	refused(http.MethodPost, "/api/clips", clipReq)
	resp := api(http.MethodPost, "/api/clips", clipReq, "clip-maker")
	var c origin.ClipInfo
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/clips: %d %v", resp.StatusCode, err)
	}
	publishOnce("gone")

	streams := func() []string {
		var out []string
		for _, v := range vodList(t, a.base) {
			out = append(out, v.Stream)
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, 30*time.Second, "the unpinned epoch deleted", func() bool { return slices.Equal(streams(), []string{"kept"}) })
	if n := metricSum(mustGet(t, a.base+"/metrics"), "archive_retention_deleted_epochs_total"); n != 1 {
		t.Errorf("archive_retention_deleted_epochs_total = %v, want 1", n)
	}
	// The clip plays on, past its epoch's retention.
	for _, fs := range files(t, a.base+c.HLS) {
		for _, f := range fs {
			mustGet(t, f)
		}
	}
	refused(http.MethodDelete, "/api/clips/"+c.ID, "")
	var list struct{ Clips []origin.ClipInfo }
	if err := json.Unmarshal(mustGet(t, a.base+"/api/clips"), &list); err != nil || len(list.Clips) != 1 || list.Clips[0].ID != c.ID {
		t.Fatalf("after DELETEs without the token, /api/clips lists %+v (%v), want the clip", list.Clips, err)
	}
	resp = api(http.MethodDelete, "/api/clips/"+c.ID, "", "clip-maker")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE the clip: %d", resp.StatusCode)
	}
	waitFor(t, 30*time.Second, "the unpinned epoch deleted", func() bool { return len(streams()) == 0 })
}

package origin

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/golivestream/live/packager"
)

// bridgeFixture is two instances of the fixture's stream, the second
// continuing the first 11 s later, as a server with window sees them.
func bridgeFixture(window time.Duration) (old, cur *stream) {
	old, oldSnap, _ := fixture(window, false)
	oldSnap.changed = make(chan struct{})
	old.snap.Store(oldSnap)
	cur, curSnap, _ := fixture(window, false)
	curSnap.changed = make(chan struct{})
	cur.epoch = "mf1epoch"
	cur.ast = old.ast.Add(11 * time.Second)
	cur.snap.Store(curSnap)
	cur.continues(old)
	return old, cur
}

// bridgeOf renders the bridged media playlist of rendition rid of st, an
// instance that a later one continues, as the chain stands now.
func bridgeOf(st *stream, rid string) []byte {
	chain, ended := st.bridgeChain(rid)
	return bridgedPlaylist(chain, ended, st.env.cfg.Window)
}

// segmentMaps returns, for each segment of an HLS media playlist, the URI
// of the EXT-X-MAP in force: gohlslib keeps only the last one.
func segmentMaps(body []byte) []string {
	var maps []string
	cur := ""
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:URI="):
			cur = strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)
		case line != "" && line[0] != '#':
			maps = append(maps, cur)
		}
	}
	return maps
}

// TestBridgedPlaylist: the media playlists of an instance that a later
// one continues go on into the later one's segments, after a
// discontinuity and the later init segment, with media sequence and
// discontinuity sequence numbers that go on across both.
func TestBridgedPlaylist(t *testing.T) {
	old, cur := bridgeFixture(30 * time.Second)
	body := bridgeOf(old, "v0")
	checkGolden(t, "bridged_v0.m3u8", body)
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	// Both instances' 8 segments, each fixture with a reconnect at 6.
	if pl.Endlist || pl.MediaSequence != 0 || len(pl.Segments) != 16 {
		t.Fatalf("ENDLIST %v, media sequence %d, %d segments; want open, 0, 16", pl.Endlist, pl.MediaSequence, len(pl.Segments))
	}
	maps := segmentMaps(body)
	for i, s := range pl.Segments {
		wantURI, wantMap, epoch := segmentPath(uint64(i)), "init.mp4", old
		if i >= 8 {
			wantURI, wantMap, epoch = "../../mf1epoch/v0/"+segmentPath(uint64(i-8)), "../../mf1epoch/v0/init.mp4", cur
		}
		wantDisc := i == 6 || i == 8 || i == 14
		if s.URI != wantURI || maps[i] != wantMap || s.Discontinuity != wantDisc {
			t.Errorf("segment %d: %s with map %s, discontinuity %v; want %s, %s, %v", i, s.URI, maps[i], s.Discontinuity, wantURI, wantMap, wantDisc)
		}
		if s.DateTime.Before(epoch.ast) {
			t.Errorf("segment %d dated %v, before its instance began (%v)", i, s.DateTime, epoch.ast)
		}
	}

	// A short window: the first instance's last segment, then the later
	// one's two listed ones (its reconnect gap unlisted the others).
	old, cur = bridgeFixture(4 * time.Second)
	checkBridge(t, bridgeOf(old, "a0"), 7, 1, []string{"7.m4s", "../../mf1epoch/a0/6.m4s", "../../mf1epoch/a0/7.m4s"}, []bool{false, true, false})
	// Once the first instance's files are gone, only the later one's are
	// listed, after three discontinuities: the reconnect in the first, the
	// switch, and the reconnect in the later one, which its first segment
	// shows.
	old.gone.Store(true)
	checkBridge(t, bridgeOf(old, "a0"), 8+6, 2, []string{"../../mf1epoch/a0/6.m4s", "../../mf1epoch/a0/7.m4s"}, []bool{true, false})
	old.strip()
	checkBridge(t, bridgeOf(old, "a0"), 8+6, 2, []string{"../../mf1epoch/a0/6.m4s", "../../mf1epoch/a0/7.m4s"}, []bool{true, false})

	// A third instance continues the second: numbers and discontinuities
	// go on across the whole chain.
	third, thirdSnap, _ := fixture(4*time.Second, false)
	third.epoch = "mf2epoch"
	third.ast = cur.ast.Add(11 * time.Second)
	third.snap.Store(thirdSnap)
	third.continues(cur)
	checkBridge(t, bridgeOf(old, "a0"), 8+7, 3,
		[]string{"../../mf1epoch/a0/7.m4s", "../../mf2epoch/a0/6.m4s", "../../mf2epoch/a0/7.m4s"}, []bool{false, true, false})
	cur.gone.Store(true)
	checkBridge(t, bridgeOf(old, "a0"), 16+6, 4, []string{"../../mf2epoch/a0/6.m4s", "../../mf2epoch/a0/7.m4s"}, []bool{true, false})
	checkBridge(t, bridgeOf(cur, "a0"), 8+6, 2, []string{"../../mf2epoch/a0/6.m4s", "../../mf2epoch/a0/7.m4s"}, []bool{true, false})
}

// checkBridge checks a bridged playlist's media sequence, discontinuity
// sequence, segment URIs and discontinuities.
func checkBridge(t *testing.T, body []byte, msn, ds int, uris []string, discs []bool) {
	t.Helper()
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	gotDS := 0
	if pl.DiscontinuitySequence != nil {
		gotDS = *pl.DiscontinuitySequence
	}
	var gotDiscs []bool
	for _, s := range pl.Segments {
		gotDiscs = append(gotDiscs, s.Discontinuity)
	}
	if pl.MediaSequence != msn || gotDS != ds || !slices.Equal(uriList(&pl), uris) || !slices.Equal(gotDiscs, discs) {
		t.Errorf("media sequence %d, discontinuity sequence %d, segments %v, discontinuities %v; want %d, %d, %v, %v\n%s",
			pl.MediaSequence, gotDS, uriList(&pl), gotDiscs, msn, ds, uris, discs, body)
	}
}

// TestBridgeSuccessor: which rendition of the later instance the players
// of each rendition go on with.
func TestBridgeSuccessor(t *testing.T) {
	vid := func(id string, height int, ladder bool) *rendition {
		return &rendition{id: id, ladder: ladder, info: packager.Info{Video: true, Height: height, Timescale: 90000}}
	}
	aud := func(id string) *rendition { return &rendition{id: id, info: packager.Info{Timescale: 48000}} }
	// played gives r seconds of media: the later instance's ladder had
	// its time once it has bridgeGrace segment durations.
	played := func(r *rendition, seconds int) *rendition {
		c := *r
		c.entries = []*entry{{seg: &packager.Segment{Duration: int64(seconds) * 90000, Timescale: 90000}}}
		return &c
	}
	for _, tc := range []struct {
		name string
		from []*rendition
		to   []*rendition
		rid  string
		want string // "?" for not decided yet
	}{
		{"same height at once", []*rendition{vid("v0", 360, false), vid("v1", 240, true)}, []*rendition{vid("v0", 360, false)}, "v0", "v0"},
		{"a rung to come", []*rendition{vid("v0", 360, false), vid("v1", 240, true)}, []*rendition{vid("v0", 360, false)}, "v1", "?"},
		{"no rung came", []*rendition{vid("v0", 360, false), vid("v1", 240, true)}, []*rendition{played(vid("v0", 360, false), 3)}, "v1", "v0"},
		{"no ladder to wait for", []*rendition{vid("v0", 240, false)}, []*rendition{vid("v0", 360, false)}, "v0", "v0"},
		{"nearest, the lower of two", []*rendition{vid("v0", 360, false), vid("v1", 240, true)},
			[]*rendition{played(vid("v0", 720, false), 3), vid("v1", 480, true), vid("v2", 240, true)}, "v0", "v2"},
		{"a rung before the source of its height", []*rendition{vid("v0", 720, false), vid("v1", 480, true)},
			[]*rendition{vid("v0", 480, false), vid("v1", 480, true)}, "v1", "v1"},
		{"the source before a rung of its height", []*rendition{vid("v0", 480, false), vid("v1", 240, true)},
			[]*rendition{vid("v1", 480, true), vid("v0", 480, false)}, "v0", "v0"},
		{"audio by id", []*rendition{aud("a0"), aud("a1")}, []*rendition{aud("a0"), aud("a1")}, "a1", "a1"},
		{"audio, the first", []*rendition{aud("a0"), aud("a1")}, []*rendition{aud("a0")}, "a1", "a0"},
		{"no audio any more", []*rendition{vid("v0", 240, false), aud("a0")}, []*rendition{vid("v0", 240, false)}, "a0", ""},
		{"no video any more", []*rendition{vid("v0", 240, false), aud("a0")}, []*rendition{aud("a0")}, "v0", ""},
		// The later instance before its publisher attached: nothing to
		// decide on yet, rather than no rendition for good.
		{"not attached yet", []*rendition{vid("v0", 240, false), aud("a0")}, nil, "v0", "?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := newStream(nil, "s", time.Now(), nil, 0, nil)
			to.snap.Store(&snapshot{renditions: tc.to})
			s := newSuccession(to, &snapshot{renditions: tc.from})
			id, ok := s.successor(tc.rid, time.Second)
			if !ok {
				id = "?"
			}
			if id != tc.want {
				t.Fatalf("%s goes on with %q, want %q", tc.rid, id, tc.want)
			}
			if !ok {
				return
			}
			// A decision holds, whatever comes later.
			to.snap.Store(&snapshot{renditions: append(slices.Clone(tc.to), vid("v9", 360, true), vid("v8", 240, true), aud("a9"))})
			if again, _ := s.successor(tc.rid, time.Second); again != id {
				t.Errorf("the decision changed to %q", again)
			}
		})
	}
}

// TestBridgeServed: through HTTP, a player on the first instance's
// playlist is led into the next instance's files, and stays on that
// playlist after the first instance's own files are gone, until the
// chain ends and its last instance is dropped.
func TestBridgeServed(t *testing.T) {
	srv, old := lostStream(t)
	oldPath := "/live/s/" + old.epoch + "/a0/index.m3u8"
	before := mediaPlaylistOf(t, srv, oldPath)

	sess := publishAudio(t, srv, "s", 44100, 3)
	cur := srv.stream("s")
	if cur == old {
		t.Fatal("other tracks resumed the old instance")
	}
	// fetchAll fetches every segment and map a playlist at path lists, and
	// returns their bodies by absolute path.
	fetchAll := func(path string) (*playlist.Media, map[string][]byte) {
		t.Helper()
		code, body := fetch(srv, path)
		var pl playlist.Media
		if err := pl.Unmarshal(body); code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %v\n%s", path, code, err, body)
		}
		base, _ := url.Parse(path)
		got := make(map[string][]byte)
		for _, uri := range append(segmentMaps(body), uriList(&pl)...) {
			ref, _ := url.Parse(uri)
			abs := base.ResolveReference(ref).Path
			got[abs] = mustFetch(t, srv, abs)
		}
		return &pl, got
	}
	pl, files := fetchAll(oldPath)
	if pl.Endlist || pl.MediaSequence != before.MediaSequence || len(pl.Segments) <= len(before.Segments) {
		t.Fatalf("bridged: ENDLIST %v, media sequence %d (was %d), %d segments (had %d); want open, the same start, more",
			pl.Endlist, pl.MediaSequence, before.MediaSequence, len(pl.Segments), len(before.Segments))
	}
	next := pl.Segments[len(before.Segments)]
	if !next.Discontinuity || !strings.HasPrefix(next.URI, "../../"+cur.epoch+"/a0/") {
		t.Errorf("after the first instance's segments: %s, discontinuity %v; want the next instance's, discontinuous", next.URI, next.Discontinuity)
	}
	// Every file it leads to is the next instance's, as its own playlist
	// lists it.
	_, own := fetchAll("/live/s/" + cur.epoch + "/a0/index.m3u8")
	for p, b := range own {
		if got, ok := files[p]; !ok || !bytes.Equal(got, b) {
			t.Errorf("%s: the bridged playlist does not lead to it, or to other bytes", p)
		}
	}

	// The first instance dropped: its files go, its playlist stays, with
	// the next instance's media under numbers that go on.
	srv.forget(old)
	writeAudio(t, sess, 44100, 3, 2)
	if code, _ := fetch(srv, "/live/s/"+old.epoch+"/a0/init.mp4"); code != http.StatusNotFound {
		t.Errorf("a dropped instance's init segment: %d, want 404", code)
	}
	later, _ := fetchAll(oldPath)
	if later.Endlist || !strings.HasPrefix(later.Segments[0].URI, "../../"+cur.epoch+"/") {
		t.Errorf("once dropped: ENDLIST %v, first segment %s; want open, the next instance's only", later.Endlist, later.Segments[0].URI)
	}
	want := pl.MediaSequence + len(before.Segments) + int(parseNumber(t, later.Segments[0].URI))
	if later.MediaSequence != want {
		t.Errorf("once dropped: media sequence %d, want %d", later.MediaSequence, want)
	}

	// The chain ends, then its last instance is dropped.
	sess.Close()
	if pl, _ := fetchAll(oldPath); !pl.Endlist {
		t.Error("the chain ended, the bridged playlist did not")
	}
	srv.forget(cur)
	if code, _ := fetch(srv, oldPath); code != http.StatusNotFound {
		t.Errorf("the chain dropped, its first playlist: %d, want 404", code)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.replaced) != 0 {
		t.Errorf("%d instances kept after the chain was dropped", len(srv.replaced))
	}
}

func uriList(pl *playlist.Media) []string {
	out := make([]string, len(pl.Segments))
	for i, s := range pl.Segments {
		out[i] = s.URI
	}
	return out
}

// parseNumber returns the segment number of a segment URI.
func parseNumber(t *testing.T, uri string) uint64 {
	t.Helper()
	var n uint64
	name := uri[strings.LastIndex(uri, "/")+1:]
	for _, c := range strings.TrimSuffix(name, ".m4s") {
		if c < '0' || c > '9' {
			t.Fatalf("segment URI %s", uri)
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// TestBridgeBlockingReload: an LL-HLS player's blocking reload of an
// instance's playlist, held when a later instance takes over, is
// answered with the playlist going on into the later instance, never
// with the superseded instance's own, which ends (#22: hls.js read that
// EXT-X-ENDLIST and stopped at the end of the first epoch).
func TestBridgeBlockingReload(t *testing.T) {
	srv, old := lostStream(t)
	oldPath := "/live/s/" + old.epoch + "/a0/index.m3u8"
	pl := mediaPlaylistOf(t, srv, oldPath)
	if pl.ServerControl == nil || !pl.ServerControl.CanBlockReload {
		t.Fatal("the lost publisher's playlist is not LL-HLS")
	}
	next := uint64(pl.MediaSequence + len(pl.Segments))
	type answer struct {
		code int
		body []byte
	}
	held := make(chan answer, 1)
	go func() {
		c, b := fetch(srv, oldPath+"?_HLS_msn="+itoa(next)+"&_HLS_part=0")
		held <- answer{c, b}
	}()
	awaitHeld(t, srv, 1, held)

	// Other tracks: a new instance, which takes over before it has
	// finished a segment. The held request waits on for one.
	sess, err := srv.Publish("s", []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	cur := srv.stream("s")
	if cur == old {
		t.Fatal("other tracks resumed the old instance")
	}
	// A blocking reload asked for now is held too, not answered with
	// what the later instance has not made yet.
	heldToo := make(chan answer, 1)
	go func() {
		c, b := fetch(srv, oldPath+"?_HLS_msn="+itoa(next)+"&_HLS_part=0")
		heldToo <- answer{c, b}
	}()
	awaitHeld(t, srv, 2, heldToo)
	writeAudio(t, sess, 44100, 0, 3)
	<-heldToo
	a := <-held
	got := parseMedia(t, a.body)
	if a.code != http.StatusOK || got.Endlist {
		t.Fatalf("the held blocking reload: %d, ENDLIST %v, want the playlist going on:\n%s", a.code, got.Endlist, a.body)
	}
	if n := len(got.Segments); n <= len(pl.Segments) || !strings.HasPrefix(got.Segments[len(pl.Segments)].URI, "../../"+cur.epoch+"/a0/") {
		t.Errorf("the held blocking reload does not go on into the next instance:\n%s", a.body)
	}
}

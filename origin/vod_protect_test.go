package origin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/internal/mp4test"
	"github.com/golivestream/live/internal/mpdtest"
	"github.com/golivestream/live/packager"
	"github.com/golivestream/live/protection"
)

// goldenKID returns a KID made of b.
func goldenKID(b byte) protection.KID {
	var k protection.KID
	for i := range k {
		k[i] = b
	}
	return k
}

// goldenEncryption is the record of goldenPresentation encrypted with
// key periods of 2 s: period 0 (segments 0 and 1), 1 (2 and 3), 4 (9 s,
// after the jump of the timeline) and 5 (10 and 11 s); period 2, asked
// for ahead of its time, has no segment; period 5's key comes from a
// key server with Widevine and FairPlay signalling.
func goldenEncryption() *archive.Encryption {
	enc := &archive.Encryption{Scheme: "cbcs", KeyPeriod: 2 * time.Second, SegmentDuration: time.Second}
	for _, n := range []uint64{0, 1, 2, 4, 5} {
		enc.Keys = append(enc.Keys, archive.PeriodKey{Number: n, KID: goldenKID(0xa0 + byte(n))})
	}
	enc.Keys[4].Systems = []protection.System{
		{ID: protection.SystemWidevine, PSSH: []byte{0, 0, 0, 8, 'p', 's', 's', 'h'}, HLSURI: "data:text/plain;base64,AAAACHBzc2g="},
		{ID: protection.SystemFairPlay, HLSURI: "skd://keys.example/a5"},
	}
	return enc
}

// periodKIDs returns each Period of an MPD as "id@start:default_KID",
// failing t unless every AdaptationSet of a Period has the same
// ContentProtection: the cenc descriptor with the default KID, then
// ClearKey.
func periodKIDs(t *testing.T, body []byte) []string {
	t.Helper()
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m.Periods {
		kid := ""
		for _, as := range p.AdaptationSets {
			cps := as.ContentProtections
			if len(cps) < 2 || cps[0].DefaultKID == "" || string(cps[1].SchemeIdUri) != "urn:uuid:"+string(protection.SystemClearKey) ||
				kid != "" && cps[0].DefaultKID != kid {
				t.Errorf("Period %s %s: ContentProtection %+v", p.Id, as.ContentType, cps)
				continue
			}
			kid = cps[0].DefaultKID
		}
		out = append(out, fmt.Sprintf("%s@%v:%s", p.Id, time.Duration(*p.Start), kid))
	}
	return out
}

// TestEncryptedVODManifests: the manifests of an encrypted epoch's VOD,
// of a clip of it and of its DVR window, with key changes inside them,
// as golden files. Their HLS playlists put each key's tags before the
// first segment of its key period (with the DRM systems a key server
// gave), their key URIs leading to the stream's key delivery from where
// each playlist is; their MPDs have one Period per key period with its
// key as cenc:default_KID, and pass the schema.
func TestEncryptedVODManifests(t *testing.T) {
	const epoch = "mx5p2ya4"
	vod := goldenPresentation()
	vod.keys = archivedKeys(goldenEncryption())
	files := "../../../live/cam/" + epoch + "/"
	vod.uris = presURIs{
		playlist: func(rid string) string { return rid + "/index.m3u8" },
		files:    func(rid string) string { return "../" + files + rid + "/" },
		mpdFiles: files,
		keys:     "../../../../live/cam/keys/",
	}
	clip := cutClip(vod, archive.Clip{ID: "c1", Stream: "cam", Epoch: epoch, From: 2, To: 4})
	dvr := goldenPresentation()
	dvr.live, dvr.depth = true, 2*time.Hour
	dvr.renditions[0].segs = dvr.renditions[0].segs[2:]
	dvr.renditions[0].discSeq = 3
	dvr.keys = vod.keys
	dvr.uris = presURIs{
		playlist: func(rid string) string { return epoch + "/" + rid + "/dvr.m3u8" },
		files:    func(string) string { return "" },
		mpdFiles: epoch + "/",
		keys:     keyURIPrefix,
	}
	k := func(n byte) string { return "0x" + strings.ToUpper(goldenKID(0xa0+n).Hex()) }
	// A Period's id, start and KID.
	p := func(id string, start string, n byte) string {
		return id + "@" + start + ":" + goldenKID(0xa0+n).String()
	}
	for _, tc := range []struct {
		name   string
		p      *presentation
		path   string // of the media playlists, {r} the rendition
		v0, a0 []string
		mpd    []string
	}{
		{
			"vod", vod, "/vod/cam/" + epoch + "/{r}/index.m3u8",
			[]string{k(0) + " before 0", k(1) + " before 2", k(4) + " before 4", k(5) + " before 5"},
			[]string{k(0) + " before 0", k(1) + " before 2", k(4) + " before 4", k(5) + " before 5"},
			[]string{p(epoch, "0s", 0), p(epoch+"-1", "2s", 1), p(epoch+"-4", "8s", 4), p(epoch+"-5", "10s", 5)},
		},
		{
			// Segments 2 to 4 of v0, 2 s to 10 s: the clip's media begins
			// with the audio at 1.984 s, its first Period's start.
			"clip", clip, "/vod/cam/clips/c1/{r}/index.m3u8",
			[]string{k(1) + " before 2", k(4) + " before 4"},
			[]string{k(1) + " before 2", k(4) + " before 4"},
			[]string{p(epoch+"-1", "0s", 1), p(epoch+"-4", "6.016s", 4)},
		},
		{
			"dvr", dvr, "/live/cam/" + epoch + "/{r}/dvr.m3u8",
			[]string{k(1) + " before 2", k(4) + " before 4", k(5) + " before 5"},
			[]string{k(0) + " before 0", k(1) + " before 2", k(4) + " before 4", k(5) + " before 5"},
			[]string{p(epoch, "0s", 0), p(epoch+"-1", "2s", 1), p(epoch+"-4", "8s", 4), p(epoch+"-5", "10s", 5)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := map[string]*presRendition{}
			for _, r := range tc.p.renditions {
				rs[r.id] = r
			}
			for rid, want := range map[string][]string{"v0": tc.v0, "a0": tc.a0} {
				pl := presMediaPlaylist(tc.p, rs[rid])
				checkGolden(t, tc.name+"_enc_"+rid+".m3u8", pl)
				var got []string
				for _, s := range keyTagsOf(t, strings.ReplaceAll(tc.path, "{r}", rid), string(pl)) {
					// The segment's number, from its URI.
					before, uri, _ := strings.Cut(s, " before ")
					name := uri[strings.LastIndexByte(uri, '/')+1:]
					got = append(got, before+" before "+strings.TrimSuffix(name, ".m4s"))
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: key tags %v, want %v", rid, got, want)
				}
			}
			// A key server's systems, where its key is used.
			v0 := string(presMediaPlaylist(tc.p, rs["v0"]))
			if fp := strings.Contains(v0, `URI="skd://keys.example/a5",KEYFORMAT="com.apple.streamingkeydelivery"`); fp != slices.Contains(tc.v0, k(5)+" before 5") {
				t.Errorf("FairPlay tag present %v\n%s", fp, v0)
			}
			m, err := presMPD(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			mpdtest.Validate(t, m)
			checkGolden(t, tc.name+"_enc_manifest.mpd", m)
			if got := periodKIDs(t, m); !slices.Equal(got, tc.mpd) {
				t.Errorf("Periods %v, want %v", got, tc.mpd)
			}
		})
	}
}

// TestVODKeyedSegments: segments of a key period whose key the archive's
// record does not name (a crash before the record was written) end every
// rendition before that period; a key period that only an audio segment
// reaches (audio outlasting the video) is left out; with every key
// recorded and every period whole, every segment is kept.
func TestVODKeyedSegments(t *testing.T) {
	lastOf := func(rs []*presRendition) string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s:%d-%d", r.id, r.segs[0].number, r.segs[len(r.segs)-1].number))
		}
		return strings.Join(out, " ")
	}
	lost := goldenEncryption()
	lost.Keys = slices.DeleteFunc(lost.Keys, func(k archive.PeriodKey) bool { return k.Number == 4 })
	longer := goldenPresentation()
	a0 := longer.renditions[2]
	a0.segs = append(a0.segs, presSegment{number: 7, start: a0.segs[6].end(), duration: 48128, size: 16_000}) // 12 s: key period 6
	withSix := goldenEncryption()
	withSix.Keys = append(withSix.Keys, archive.PeriodKey{Number: 6, KID: goldenKID(0xa6)})
	for _, tc := range []struct {
		name string
		enc  *archive.Encryption
		p    *presentation
		want string
	}{
		{"every key", goldenEncryption(), goldenPresentation(), "v0:0-6 v1:2-6 a0:0-6"},
		{"key of period 4 lost", lost, goldenPresentation(), "v0:0-3 v1:2-3 a0:0-3"},
		{"audio outlasting the video", withSix, longer, "v0:0-6 v1:2-6 a0:0-6"},
	} {
		if got := lastOf(archivedKeys(tc.enc).keyed(tc.p.renditions)); got != tc.want {
			t.Errorf("%s: segments %s, want %s", tc.name, got, tc.want)
		}
	}
}

// keyedFiles checks the manifests of an encrypted presentation served by
// srv: the multivariant playlist at mv, its media playlists, and the MPD
// at mpdPath. In each media playlist every segment is preceded by the
// tags of its key period's key (keyOf, by the segment's path), and the
// key that its key URI gives, asked of keySrv, decrypts it, with the KID
// and IV of its media (mp4test.MediaKey), to the clear origin's segment
// of the same path under clearDir (see protectedPair). The MPD passes
// the schema and has a Period per key period, each with its key. It
// returns the number of segments checked.
func keyedFiles(t *testing.T, srv, keySrv, clearSrv *Server, mv, mpdPath, clearDir string, keyOf func(path string) (uint64, protection.Key)) int {
	t.Helper()
	var mvp playlist.Multivariant
	if err := mvp.Unmarshal(mustFetch(t, srv, mv)); err != nil {
		t.Fatalf("%s: %v", mv, err)
	}
	var pls []string
	for _, v := range mvp.Variants {
		pls = append(pls, resolve(t, mv, v.URI))
	}
	for _, r := range mvp.Renditions {
		if r.URI != nil {
			pls = append(pls, resolve(t, mv, *r.URI))
		}
	}
	keyValues := map[string][]byte{} // by key path
	checked := 0
	periods := map[uint64]protection.KID{}
	for _, plPath := range pls {
		body := mustFetch(t, srv, plPath)
		var pl playlist.Media
		if err := pl.Unmarshal(body); err != nil {
			t.Fatalf("%s: %v", plPath, err)
		}
		init := mustFetch(t, srv, resolve(t, plPath, pl.Map.URI))
		tags := keyTagsOf(t, plPath, string(body))
		if len(tags) < 2 {
			t.Errorf("%s: key tags %v: no key change", plPath, tags)
		}
		kid := ""
		for _, seg := range pl.Segments {
			segPath := resolve(t, plPath, seg.URI)
			if len(tags) > 0 && strings.HasSuffix(tags[0], " before "+seg.URI) {
				kid, _, _ = strings.Cut(tags[0], " ")
				tags = tags[1:]
			}
			n, want := keyOf(segPath)
			periods[n] = want.KID
			if kid != "0x"+strings.ToUpper(want.KID.Hex()) {
				t.Fatalf("%s: %s under key %s, want period %d's %s", plPath, seg.URI, kid, n, want.KID)
			}
			keyPath := "/live/" + strings.Split(segPath, "/")[2] + "/keys/" + want.KID.Hex()
			value, ok := keyValues[keyPath]
			if !ok {
				value = mustFetch(t, keySrv, keyPath)
				keyValues[keyPath] = value
			}
			enc := mustFetch(t, srv, segPath)
			mkid, iv := mp4test.MediaKey(t, init, enc)
			if protection.KID(mkid) != want.KID {
				t.Fatalf("%s is encrypted with %x, its playlist says %s", segPath, mkid, want.KID)
			}
			clear := mustFetch(t, clearSrv, clearDir+strings.Join(strings.Split(segPath, "/")[4:], "/"))
			if dec := mp4test.Decrypt(t, init, enc, mkid, value, iv); !bytes.Equal(dec, clear) {
				t.Fatalf("%s, decrypted with the key of %s, differs from the clear segment", segPath, keyPath)
			}
			checked++
		}
	}
	m := mustFetch(t, srv, mpdPath)
	mpdtest.Validate(t, m)
	got := periodKIDs(t, m)
	if len(got) != len(periods) {
		t.Errorf("%s: Periods %v for key periods %v", mpdPath, got, periods)
	}
	for i, n := range slices.Sorted(maps.Keys(periods)) {
		if i < len(got) && !strings.HasSuffix(got[i], ":"+periods[n].String()) {
			t.Errorf("%s: Period %d is %s, want key period %d's KID %s", mpdPath, i, got[i], n, periods[n])
		}
	}
	return checked
}

// TestEncryptedVOD: an encrypted stream with a key change every 2 s is
// archived as it runs. Its DVR window, while it runs, and, once it
// ended, its VOD (listed as encrypted, with its license URL) and a clip
// of it, served by an origin that never saw
// it (a restart: a new key store from the same secret), say which key
// each segment needs; that origin's key delivery gives those keys, which
// decrypt every archived segment to the clear stream's. The archive
// holds no key; an origin with another secret gives none; and an epoch
// whose record lost a key (a crash) plays up to that key period.
func TestEncryptedVOD(t *testing.T) {
	const keyPeriod = 2 * time.Second
	k := newArchiveKit(t)
	clearSrv, encSrv, keys, sessions := protectedPairWith(t, "enc", 2, keyPeriod, Config{Archive: k.w, ArchiveStore: k.store, DVR: 2 * time.Minute})
	st, cst := encSrv.stream("enc"), clearSrv.stream("enc")
	clearDir := "/live/enc/" + cst.epoch + "/"
	segs := map[string]*packager.Segment{} // by path, as the stream stands
	listSegments := func() {
		for _, r := range st.snap.Load().renditions {
			for _, e := range r.entries {
				segs["/live/enc/"+st.epoch+"/"+r.id+"/"+segmentPath(e.seg.Number)] = e.seg
			}
		}
	}
	listSegments()
	keyOf := func(path string) (uint64, protection.Key) {
		seg := segs[path]
		if seg == nil {
			t.Fatalf("%s: not a segment of the stream", path)
		}
		n := keyPeriodOf(seg.Start, seg.Timescale, keyPeriod, encSrv.cfg.SegmentDuration)
		key, err := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: st.epoch, Number: n})
		if err != nil {
			t.Fatal(err)
		}
		return n, key
	}
	if n := keyedFiles(t, encSrv, encSrv, clearSrv, "/live/enc/dvr.m3u8", "/live/enc/dvr.mpd", clearDir, keyOf); n < 20 {
		t.Errorf("DVR window: %d segments checked", n)
	}
	for _, sess := range sessions {
		sess.Close() // the last segments
	}
	listSegments()
	k.flush(t)

	// The archive's record names the KIDs, and holds no key.
	meta, err := k.store.Get(t.Context(), archive.EpochPrefix("enc", st.epoch)+"epoch.json", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	for n := range uint64(6) {
		_, key := keyOf(firstOfPeriod(t, segs, keyPeriod, n))
		if !bytes.Contains(meta, []byte(key.KID.String())) {
			t.Errorf("the record does not name key period %d's KID %s:\n%s", n, key.KID, meta)
		}
		for _, v := range [][]byte{key.Value[:], key.IV[:]} {
			for _, form := range []string{hex.EncodeToString(v), base64.StdEncoding.EncodeToString(v), base64.RawURLEncoding.EncodeToString(v)} {
				if bytes.Contains(bytes.ToLower(meta), []byte(strings.ToLower(form))) {
					t.Errorf("the record holds key material of period %d: %s", n, form)
				}
			}
		}
	}

	restarted := func(secret []byte) *Server {
		t.Helper()
		ks, err := protection.NewStore(protection.StoreConfig{Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{ArchiveStore: k.store, Protection: &Protection{Keys: ks, KeyPeriod: keyPeriod}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		return srv
	}
	later := restarted(testSecret)
	vod := "/vod/enc/" + st.epoch + "/"
	var list struct{ VODs []VODInfo }
	if err := json.Unmarshal(mustFetch(t, later, "/api/vods"), &list); err != nil || len(list.VODs) != 1 ||
		!list.VODs[0].Encrypted || list.VODs[0].License != "/live/enc/license" {
		t.Errorf("/api/vods: %+v (%v), want the VOD encrypted, its license URL /live/enc/license", list.VODs, err)
	}
	if n := keyedFiles(t, later, later, clearSrv, vod+"index.m3u8", vod+"manifest.mpd", clearDir, keyOf); n < 3*len(segs)/4 {
		t.Errorf("VOD: %d segments checked of %d", n, len(segs))
	}
	// A license request for every KID of the VOD.
	var kids []string
	for n := range uint64(6) {
		_, key := keyOf(firstOfPeriod(t, segs, keyPeriod, n))
		kids = append(kids, key.KID.Base64URL())
	}
	rec := httptest.NewRecorder()
	body, _ := json.Marshal(map[string]any{"kids": kids, "type": "temporary"})
	later.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/live/enc/license", bytes.NewReader(body)))
	var license struct{ Keys []struct{ Kid, K string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &license); rec.Code != http.StatusOK || err != nil || len(license.Keys) != len(kids) {
		t.Errorf("license for the VOD's %d KIDs: %d, %d keys (%v)", len(kids), rec.Code, len(license.Keys), err)
	}

	// A clip from 3 s to 9 s.
	rec = httptest.NewRecorder()
	later.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/clips", strings.NewReader(`{"stream":"enc","from":3,"to":9}`)))
	var c ClipInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &c); rec.Code != http.StatusCreated || err != nil {
		t.Fatalf("POST /api/clips: %d %s", rec.Code, rec.Body)
	}
	if n := keyedFiles(t, later, later, clearSrv, c.HLS, c.DASH, clearDir, keyOf); n < 10 {
		t.Errorf("clip: %d segments checked", n)
	}

	// Another secret: the same KIDs are not its keys.
	other := restarted(bytes.Repeat([]byte{0x33}, 32))
	_, k1 := keyOf(firstOfPeriod(t, segs, keyPeriod, 1))
	if code, b := fetch(other, "/live/enc/keys/"+k1.KID.Hex()); code != http.StatusNotFound {
		t.Errorf("an origin with another secret: key %s answered %d (%d bytes)", k1.KID, code, len(b))
	}

	// A record that lost key period 4's KID (a crash): the VOD ends
	// before that period, in every rendition.
	var m archive.EpochMeta
	if err := json.Unmarshal(meta, &m); err != nil {
		t.Fatal(err)
	}
	m.Encryption.Keys = slices.DeleteFunc(slices.Clone(m.Encryption.Keys), func(pk archive.PeriodKey) bool { return pk.Number == 4 })
	b, _ := json.Marshal(m)
	if err := k.store.Put(t.Context(), archive.EpochPrefix("enc", st.epoch)+"epoch.json", b); err != nil {
		t.Fatal(err)
	}
	crashed := restarted(testSecret)
	for _, r := range st.snap.Load().renditions {
		pl := mediaPlaylistAt(t, crashed, vod+r.id+"/index.m3u8")
		last := resolve(t, vod+r.id+"/index.m3u8", pl.Segments[len(pl.Segments)-1].URI)
		if n, _ := keyOf(last); n != 3 {
			t.Errorf("%s: the VOD ends in key period %d, want 3", r.id, n)
		}
	}
}

// firstOfPeriod returns the path of a segment of key period n among segs.
func firstOfPeriod(t *testing.T, segs map[string]*packager.Segment, keyPeriod time.Duration, n uint64) string {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(segs)) {
		s := segs[p]
		if keyPeriodOf(s.Start, s.Timescale, keyPeriod, time.Second) == n {
			return p
		}
	}
	t.Fatalf("no segment of key period %d", n)
	return ""
}

// TestArchivedKeyFetchedAgain: with keys from a key server, an origin
// that did not issue the keys of an archived epoch asks the key server
// again for the key of the period the epoch's record names a KID for,
// and delivers it; a KID that no archived epoch of the stream names is
// not asked for, and neither is one of another stream.
func TestArchivedKeyFetchedAgain(t *testing.T) {
	var mu sync.Mutex
	var asked []protection.Period
	keyServer := func(_ context.Context, p protection.Period, kid protection.KID) (protection.Key, error) {
		mu.Lock()
		asked = append(asked, p)
		mu.Unlock()
		k := protection.Key{KID: kid}
		copy(k.Value[:], kid[8:])
		copy(k.Value[8:], kid[:8]) // the key server's own key for kid
		return k, nil
	}
	newKeys := func() *protection.Store {
		ks, err := protection.NewStore(protection.StoreConfig{Secret: testSecret, Fetch: keyServer})
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	// The keys a first origin issued for three key periods, recorded in
	// the archive as it does.
	k := newArchiveKit(t)
	first := newKeys()
	ep, err := k.w.Begin("cam", "mx5p2ya4", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var issued []protection.Key
	enc := archive.Encryption{Scheme: "cbcs", KeyPeriod: 2 * time.Second, SegmentDuration: time.Second}
	for n := range uint64(3) {
		key, err := first.Key(t.Context(), protection.Period{Stream: "cam", Epoch: "mx5p2ya4", Number: n})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, key)
		enc.Keys = append(enc.Keys, archive.PeriodKey{Number: n, KID: key.KID})
	}
	ep.Encrypted(enc)
	ep.End(time.Time{})
	k.flush(t)
	mu.Lock()
	asked = nil
	mu.Unlock()

	srv, err := New(Config{ArchiveStore: k.store, Protection: &Protection{Keys: newKeys(), KeyPeriod: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	code, body := fetch(srv, "/live/cam/keys/"+issued[2].KID.Hex())
	if code != http.StatusOK || !bytes.Equal(body, issued[2].Value[:]) {
		t.Errorf("archived key of period 2: %d %x, want %x", code, body, issued[2].Value)
	}
	if code, _ := fetch(srv, "/live/cam/keys/"+issued[2].KID.Hex()); code != http.StatusOK {
		t.Errorf("archived key of period 2, again: %d", code)
	}
	if code, _ := fetch(srv, "/live/other/keys/"+issued[1].KID.Hex()); code != http.StatusNotFound {
		t.Errorf("an archived key of cam asked for under another stream: %d", code)
	}
	if code, _ := fetch(srv, "/live/cam/keys/"+goldenKID(0x77).Hex()); code != http.StatusNotFound {
		t.Errorf("a KID no record names: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []protection.Period{{Stream: "cam", Epoch: "mx5p2ya4", Number: 2}}; !slices.Equal(asked, want) {
		t.Errorf("the key server was asked for %v, want %v (once)", asked, want)
	}
}

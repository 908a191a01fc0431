package origin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mp4test"
	"github.com/golivestream/live/internal/mpdtest"
	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/protection"
	"github.com/golivestream/live/publisher"
)

// testSecret makes the keys of the tests, and so their output, fixed.
var testSecret = bytes.Repeat([]byte{0x5a}, 32)

// fixedEpoch is a directory that agrees on one epoch for every stream,
// so that the keys, derived from the epoch, and so the init segments of
// the tests are always the same.
type fixedEpoch struct{}

func (fixedEpoch) AgreeEpoch(context.Context, string, string, string) (string, error) {
	return "mx5p2ya4", nil
}

func (fixedEpoch) Serving(string, string, uint64) {}

func (fixedEpoch) Placement(string) (streaminfo.Placement, bool) {
	return streaminfo.Placement{}, false
}

// protectedPair publishes the demo clip, loops times, as stream name into
// two origins, one clear and one encrypting with keyPeriod, and returns
// both and the encrypting one's key store.
func protectedPair(t *testing.T, name string, loops int, keyPeriod time.Duration) (clear, enc *Server, keys *protection.Store) {
	t.Helper()
	clear, enc, keys, _ = protectedPairWith(t, name, loops, keyPeriod, Config{})
	return clear, enc, keys
}

// protectedPairWith is protectedPair with the encrypting origin's
// archive and DVR settings taken from cfg; it also returns the two
// origins' sessions, still publishing, the clear one's first.
func protectedPairWith(t *testing.T, name string, loops int, keyPeriod time.Duration, cfg Config) (clear, enc *Server, keys *protection.Store, sessions []*Session) {
	t.Helper()
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if keys, err = protection.NewStore(protection.StoreConfig{Secret: testSecret}); err != nil {
		t.Fatal(err)
	}
	if clear, err = New(Config{Window: time.Minute}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clear.Close)
	enc, err = New(Config{Window: time.Minute, Directory: fixedEpoch{}, Protection: &Protection{Keys: keys, KeyPeriod: keyPeriod},
		Archive: cfg.Archive, ArchiveStore: cfg.ArchiveStore, DVR: cfg.DVR})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Close)
	for _, srv := range []*Server{clear, enc} {
		sess, err := srv.Publish(name, clipTracks(t, clip))
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	for loop := range loops {
		off := time.Duration(loop) * clip.Duration
		for _, smp := range clip.Samples {
			for _, sess := range sessions {
				var err error
				if smp.NALUs != nil {
					err = sess.WriteVideo(smp.Track, smp.PTS+off, smp.DTS+off, smp.NALUs)
				} else {
					err = sess.WriteAudio(smp.Track, smp.PTS+off, smp.AU)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return clear, enc, keys, sessions
}

// TestEncryptedStream: every file of an encrypted stream, decrypted with
// mp4ff and the key of its key period, is the clear stream's file byte for
// byte (init segments aside, which carry the protection boxes: golden
// dumps); every chunk, served as an LL-HLS part, is too; the NAL unit
// lengths and headers and the slice headers of every video sample are in
// the clear; the key changes every key period.
func TestEncryptedStream(t *testing.T) {
	const keyPeriod = 2 * time.Second
	clearSrv, encSrv, keys := protectedPair(t, "enc", 2, keyPeriod)
	cst, est := clearSrv.stream("enc"), encSrv.stream("enc")
	k0, err := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: est.epoch})
	if err != nil {
		t.Fatal(err)
	}
	clip, _ := publisher.LoadClip(democlip.Bytes())
	h264 := clipTracks(t, clip)[0].(*codecs.H264)
	sps, err := avc.ParseSPSNALUnit(h264.SPS, true)
	if err != nil {
		t.Fatal(err)
	}
	pps, err := avc.ParsePPSNALUnit(h264.PPS, map[uint32]*avc.SPS{sps.ParameterID: sps})
	if err != nil {
		t.Fatal(err)
	}
	spsMap, ppsMap := map[uint32]*avc.SPS{sps.ParameterID: sps}, map[uint32]*avc.PPS{pps.PicParameterSetID: pps}

	periods := map[uint64]bool{}
	for _, r := range est.snap.Load().renditions {
		cdir := "/live/enc/" + cst.epoch + "/" + r.id + "/"
		edir := "/live/enc/" + est.epoch + "/" + r.id + "/"
		code, encInit := fetch(encSrv, edir+"init.mp4")
		if code != http.StatusOK {
			t.Fatalf("%s init: %d", r.id, code)
		}
		checkGolden(t, "protected_init_"+r.id+".dump", mp4test.BoxDump(t, encInit))
		if kid := defaultKID(t, encInit); kid != k0.KID {
			t.Errorf("%s: default KID %s, want period 0's %s", r.id, kid, k0.KID)
		}
		if len(r.entries) < 10 {
			t.Fatalf("%s: %d segments", r.id, len(r.entries))
		}
		for _, e := range r.entries {
			n := e.seg.Number
			period := keyPeriodOf(e.seg.Start, e.seg.Timescale, keyPeriod, encSrv.cfg.SegmentDuration)
			periods[period] = true
			key, err := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: est.epoch, Number: period})
			if err != nil {
				t.Fatal(err)
			}
			_, clearSeg := fetch(clearSrv, cdir+segmentPath(n))
			code, encSeg := fetch(encSrv, edir+segmentPath(n))
			if code != http.StatusOK || bytes.Equal(clearSeg, encSeg) {
				t.Fatalf("%s segment %d: %d, encrypted %v", r.id, n, code, !bytes.Equal(clearSeg, encSeg))
			}
			if dec := decryptWith(t, encInit, encSeg, key, r.id); !bytes.Equal(dec, clearSeg) {
				t.Fatalf("%s segment %d (key period %d): decrypted differs from the clear segment", r.id, n, period)
			}
			for p := range e.seg.Chunks {
				_, clearPart := fetch(clearSrv, cdir+strconv.FormatUint(n, 10)+"."+strconv.Itoa(p)+".m4s")
				code, encPart := fetch(encSrv, edir+strconv.FormatUint(n, 10)+"."+strconv.Itoa(p)+".m4s")
				if code != http.StatusOK || !bytes.Equal(decryptWith(t, encInit, encPart, key, r.id), clearPart) {
					t.Fatalf("%s part %d.%d: %d, or decrypted differs from the clear part", r.id, n, p, code)
				}
				if r.info.Video {
					checkClearHeaders(t, encInit, encPart, clearPart, spsMap, ppsMap)
				}
			}
		}
	}
	if len(periods) < 5 {
		t.Errorf("key periods %v of 12 s of media with a key period of %v", periods, keyPeriod)
	}
}

// decryptWith decrypts media (moof+mdat pairs) with key, the key of its
// key period, for the track whose encrypted init segment is encInit.
func decryptWith(t *testing.T, encInit, media []byte, key protection.Key, track string) []byte {
	t.Helper()
	iv := key.TrackIV(track)
	return mp4test.Decrypt(t, encInit, media, key.KID, key.Value[:], iv[:])
}

// checkClearHeaders checks that in every video sample of enc, the
// encryption of the clear fragment clear, the bytes that the subsample map
// leaves clear are the clear sample's, and that they hold each NAL unit's
// length and header and each slice's header.
func checkClearHeaders(t *testing.T, encInit, enc, clear []byte, spsMap map[uint32]*avc.SPS, ppsMap map[uint32]*avc.PPS) {
	t.Helper()
	ef, err := mp4.DecodeFile(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := mp4.DecodeFile(bytes.NewReader(clear))
	if err != nil {
		t.Fatal(err)
	}
	efrag, cfrag := ef.Segments[0].Fragments[0], cf.Segments[0].Fragments[0]
	traf := efrag.Moof.Traf
	if traf.Senc == nil {
		t.Fatal("no senc in an encrypted video chunk")
	}
	if traf.Senc.ReadButNotParsed() {
		if err := traf.Senc.ParseReadBox(0, traf.Saiz); err != nil {
			t.Fatal(err)
		}
	}
	ed, cd := efrag.Mdat.Data, cfrag.Mdat.Data
	off := 0
	for i, smp := range cfrag.Moof.Traf.Trun.GetSamples() {
		size := smp.Size
		sample := cd[off : off+int(size)]
		clearAt := make([]bool, len(sample))
		pos := 0
		for _, ss := range traf.Senc.SubSamples[i] {
			for j := pos; j < pos+int(ss.BytesOfClearData); j++ {
				clearAt[j] = true
			}
			if !bytes.Equal(ed[off+pos:off+pos+int(ss.BytesOfClearData)], sample[pos:pos+int(ss.BytesOfClearData)]) {
				t.Fatalf("sample %d: clear bytes at %d differ", i, pos)
			}
			pos += int(ss.BytesOfClearData) + int(ss.BytesOfProtectedData)
		}
		for p := 0; p+4 <= len(sample); {
			l := int(uint32(sample[p])<<24 | uint32(sample[p+1])<<16 | uint32(sample[p+2])<<8 | uint32(sample[p+3]))
			nalu := sample[p+4 : p+4+l]
			head := 4 + 1 // the length and the NAL unit header
			switch avc.GetNaluType(nalu[0]) {
			case avc.NALU_NON_IDR, avc.NALU_IDR:
				sh, err := avc.ParseSliceHeader(nalu, spsMap, ppsMap)
				if err != nil {
					t.Fatal(err)
				}
				head = 4 + int(sh.Size)
			}
			for j := p; j < p+head; j++ {
				if !clearAt[j] {
					t.Fatalf("sample %d: byte %d of the NAL unit at %d (header of %d bytes) is encrypted", i, j-p, p, head)
				}
			}
			p += 4 + l
		}
		off += int(size)
	}
}

// defaultKID returns the tenc default KID of an init segment.
func defaultKID(t *testing.T, init []byte) protection.KID {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		t.Fatal(err)
	}
	di, err := mp4.DecryptInit(f.Init)
	if err != nil {
		t.Fatal(err)
	}
	var kid protection.KID
	copy(kid[:], di.TrackInfos[0].Sinf.Schi.Tenc.DefaultKID)
	return kid
}

// TestEncryptedManifests: the media playlists announce each key period's
// key before its first segment, in full playlists and delta updates; the
// MPD describes each key period as a Period with its key as
// cenc:default_KID, valid against the DASH schema.
func TestEncryptedManifests(t *testing.T) {
	const keyPeriod = 2 * time.Second
	_, srv, keys := protectedPair(t, "enc", 2, keyPeriod)
	st := srv.stream("enc")
	keyOf := func(n uint64) protection.Key {
		k, err := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: st.epoch, Number: n})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, r := range st.snap.Load().renditions {
		for _, q := range []string{"", "?_HLS_skip=YES"} {
			plPath := "/live/enc/" + st.epoch + "/" + r.id + "/index.m3u8"
			code, body := fetch(srv, plPath+q)
			if code != http.StatusOK {
				t.Fatalf("%s playlist%s: %d", r.id, q, code)
			}
			first := ^uint64(0) // the first segment the playlist lists
			for _, line := range strings.Split(string(body), "\n") {
				if line != "" && line[0] != '#' {
					first = min(first, parseNumber(t, line))
				}
			}
			var want []string // the KEYID announced before each segment, when it changes
			last := ""
			for _, e := range r.listed() {
				if e.seg.Number < first {
					continue
				}
				kid := "0x" + strings.ToUpper(keyOf(keyPeriodOf(e.seg.Start, e.seg.Timescale, keyPeriod, srv.cfg.SegmentDuration)).KID.Hex())
				if kid != last {
					want = append(want, kid+" before "+segmentPath(e.seg.Number))
					last = kid
				}
			}
			got := keyTagsOf(t, plPath, string(body))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s%s: key tags %v, want %v\n%s", r.id, q, got, want, body)
			}
		}
	}

	code, body := fetch(srv, "/live/enc/manifest.mpd")
	if code != http.StatusOK {
		t.Fatalf("MPD: %d", code)
	}
	mpdtest.Validate(t, body)
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Periods) < 5 {
		t.Fatalf("%d Periods for 12 s with a key period of 2 s", len(m.Periods))
	}
	for i, p := range m.Periods {
		n := uint64(i)
		wantID := st.epoch
		if n > 0 {
			wantID += "-" + strconv.Itoa(i)
		}
		if p.Id != wantID || time.Duration(*p.Start) != time.Duration(n)*keyPeriod {
			t.Errorf("Period %d: id %s start %v", i, p.Id, time.Duration(*p.Start))
		}
		for _, as := range p.AdaptationSets {
			if len(as.ContentProtections) != 2 || as.ContentProtections[0].DefaultKID != keyOf(n).KID.String() ||
				string(as.ContentProtections[1].SchemeIdUri) != "urn:uuid:"+string(protection.SystemClearKey) {
				t.Errorf("Period %d %s: ContentProtection %+v", i, as.ContentType, as.ContentProtections)
			}
			for _, rep := range as.Representations {
				tpl := rep.SegmentTemplate
				pto := uint64(0)
				if tpl.PresentationTimeOffset != nil {
					pto = *tpl.PresentationTimeOffset
				}
				first := *tpl.SegmentTimeline.S[0].T
				if pto != uint64(i)*2*uint64(*tpl.Timescale) || first+uint64(*tpl.Timescale)/5 < pto {
					t.Errorf("Period %d %s: presentationTimeOffset %d, first segment at %d", i, rep.Id, pto, first)
				}
			}
		}
	}
}

// keyTagsOf returns, for each run of EXT-X-KEY tags of pl, the media
// playlist at path plPath, its KEYID and the segment URI it comes
// before. Each ClearKey tag must be SAMPLE-AES with a URI that leads
// from plPath to the key's delivery, /live/{stream}/keys/{KEYID}, of
// the stream the playlist is of; a tag that is not is returned as "bad
// tag".
func keyTagsOf(t *testing.T, plPath, pl string) []string {
	t.Helper()
	o, ok := layout.Parse(plPath)
	if !ok {
		t.Fatalf("%s is no playlist path", plPath)
	}
	var out []string
	kid := ""
	for _, line := range strings.Split(pl, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-KEY:"):
			if !strings.Contains(line, `KEYFORMAT="org.w3.clearkey"`) {
				continue // another DRM system's
			}
			_, kid, _ = strings.Cut(line, "KEYID=")
			_, uri, _ := strings.Cut(line, `URI="`)
			uri, _, _ = strings.Cut(uri, `"`)
			want := "/live/" + o.Stream + "/keys/" + strings.ToLower(strings.TrimPrefix(kid, "0x"))
			if !strings.HasPrefix(line, "#EXT-X-KEY:METHOD=SAMPLE-AES,") || resolve(t, plPath, uri) != want {
				return []string{"bad tag " + line + " (URI to " + resolve(t, plPath, uri) + ", want " + want + ")"}
			}
		case kid != "" && line != "" && line[0] != '#':
			out = append(out, kid+" before "+line)
			kid = ""
		}
	}
	return out
}

// TestKeyDelivery: the origin answers a ClearKey license request with the
// keys of the stream it names, and the key URI with the raw key, never
// cacheable; a key of another stream or an unknown one is not given.
func TestKeyDelivery(t *testing.T) {
	_, srv, keys := protectedPair(t, "enc", 1, 2*time.Second)
	st := srv.stream("enc")
	k0, _ := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: st.epoch})
	k1, _ := keys.Key(context.Background(), protection.Period{Stream: "enc", Epoch: st.epoch, Number: 1})
	other, _ := keys.Key(context.Background(), protection.Period{Stream: "other", Epoch: st.epoch})

	license := func(path string, kids ...protection.KID) (int, http.Header, map[string]string) {
		var ids []string
		for _, k := range kids {
			ids = append(ids, k.Base64URL())
		}
		body, _ := json.Marshal(map[string]any{"kids": ids, "type": "temporary"})
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		var resp struct {
			Keys []struct{ K, Kid string } `json:"keys"`
		}
		got := map[string]string{}
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			for _, k := range resp.Keys {
				got[k.Kid] = k.K
			}
		}
		return rec.Code, rec.Result().Header, got
	}
	b64 := func(v [16]byte) string { return base64.RawURLEncoding.EncodeToString(v[:]) }
	for _, path := range []string{"/live/enc/license", "/live/enc/keys/" + k1.KID.Hex()} {
		code, h, got := license(path, k0.KID, k1.KID, other.KID)
		if code != http.StatusOK || len(got) != 2 || got[k0.KID.Base64URL()] != b64(k0.Value) || got[k1.KID.Base64URL()] != b64(k1.Value) {
			t.Errorf("POST %s: %d %v", path, code, got)
		}
		if cc := h.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("POST %s: Cache-Control %q", path, cc)
		}
	}
	if code, h, _ := license("/live/enc/license", other.KID); code != http.StatusNotFound || h.Get("Cache-Control") != "private, no-store" {
		t.Errorf("another stream's key: %d %q", code, h.Get("Cache-Control"))
	}
	if code, _, _ := license("/live/other/license", k0.KID); code != http.StatusNotFound {
		t.Errorf("a key asked for under another stream: %d", code)
	}
	code, body := fetch(srv, "/live/enc/keys/"+k1.KID.Hex())
	if code != http.StatusOK || !bytes.Equal(body, k1.Value[:]) {
		t.Errorf("GET key URI: %d %x", code, body)
	}
	if code, _ := fetch(srv, "/live/enc/keys/"+other.KID.Hex()); code != http.StatusNotFound {
		t.Errorf("GET another stream's key: %d", code)
	}
}

// TestDualIngestEncryptedIdentical: two origins of a fleet fed the same
// publisher (dual hot ingest), each with its own key store made from the
// fleet's secret, agree on the epoch and so on every key, and serve
// byte-identical encrypted files, key changes included: a PoP goes on
// from one to the other at any byte, and a key from either decrypts both.
func TestDualIngestEncryptedIdentical(t *testing.T) {
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	dir := newMemDirectory()
	var servers [2]*Server
	var sessions [2]*Session
	for i := range servers {
		keys, err := protection.NewStore(protection.StoreConfig{Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		servers[i], err = New(Config{Window: time.Minute, Directory: dir, Protection: &Protection{Keys: keys, KeyPeriod: 2 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer servers[i].Close()
		if sessions[i], err = servers[i].Publish("dual", clipTracks(t, clip)); err != nil {
			t.Fatal(err)
		}
		for ms := time.Now().UnixMilli(); time.Now().UnixMilli() == ms; {
		}
	}
	for loop := range 2 {
		off := time.Duration(loop) * clip.Duration
		for _, smp := range clip.Samples {
			for _, sess := range sessions {
				if smp.NALUs != nil {
					err = sess.WriteVideo(smp.Track, smp.PTS+off, smp.DTS+off, smp.NALUs)
				} else {
					err = sess.WriteAudio(smp.Track, smp.PTS+off, smp.AU)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	st := servers[0].stream("dual")
	compared := 0
	for _, r := range st.snap.Load().renditions {
		dir := "/live/dual/" + st.epoch + "/" + r.id + "/"
		paths := []string{dir + "init.mp4", dir + "index.m3u8", "/live/dual/manifest.mpd"}
		for _, e := range r.entries {
			paths = append(paths, dir+segmentPath(e.seg.Number))
		}
		for _, p := range paths {
			ca, ba := fetch(servers[0], p)
			cb, bb := fetch(servers[1], p)
			if strings.HasSuffix(p, ".mpd") || strings.HasSuffix(p, ".m3u8") {
				// Manifests carry each origin's publish time; their key
				// signalling must match.
				if ka, kb := keyLines(ba), keyLines(bb); ca != http.StatusOK || ka != kb || ka == "" {
					t.Errorf("%s: key signalling differs:\n%s\n%s", p, ka, kb)
				}
				continue
			}
			if ca != http.StatusOK || cb != http.StatusOK || !bytes.Equal(ba, bb) {
				t.Errorf("%s: %d, %d bytes and %d, %d bytes: not identical", p, ca, len(ba), cb, len(bb))
			}
			compared++
		}
	}
	if compared < 20 {
		t.Errorf("%d files compared", compared)
	}
}

// keyLines returns the lines of a manifest that signal keys.
func keyLines(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "EXT-X-KEY") || strings.Contains(l, "default_KID") || strings.Contains(l, "<Period") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

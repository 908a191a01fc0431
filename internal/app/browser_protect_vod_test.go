package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mp4test"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/protection"
)

// TestBrowserEncryptedVOD: a stream published by ffmpeg for 10 s,
// encrypted with a key period of 2 s (five keys) and private, is
// archived, and ends. Its VOD, read through a PoP node in front of an
// origin that never saw the stream (a key store of its own, from the
// same secret: a restarted origin, or another one of the fleet), plays
// to its end in Chromium with EME ClearKey and the viewer's token, in
// Shaka Player, asking for every key of the VOD, and in dash.js from the
// watch page given the token (/api/vods names the license URL). hls.js
// plays it in its own page; how far is logged, and asking for a key with
// the token is required. Every segment of the VOD's video playlist,
// decrypted with the key its key URI gives (through the PoP, with the
// token), decodes with ffmpeg without an error. Without the token the
// key requests are refused with 401 at the PoP.
func TestBrowserEncryptedVOD(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	const keyPeriod = 2 * time.Second
	const seconds = 10
	secret := bytes.Repeat([]byte{0x5a}, 32)
	keys, err := protection.NewStore(protection.StoreConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	private := func(name string) origin.Access { return origin.Access{Private: name == "enc"} }
	st := newDirStore(t)
	a := startApp(t, Config{Archive: &Archive{Store: st}, Origin: origin.Config{
		Access:     private,
		Protection: &origin.Protection{Keys: keys, KeyPeriod: keyPeriod},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := <-publishFor(t, ctx, a, "enc", seconds); err != nil {
		t.Fatal(err)
	}
	a.waitEnded(t, "enc", 20*time.Second)
	a.flushArchive(t)
	if vods := vodList(t, a.origin); len(vods) != 0 {
		t.Errorf("/api/vods names a private stream's VOD to a viewer: %+v", vods)
	}
	vods := vodList(t, a.origin, "stream=enc") // as the watch page asks
	if len(vods) != 1 || vods[0].Stream != "enc" {
		t.Fatalf("/api/vods?stream=enc: %+v", vods)
	}
	epoch := vods[0].Epoch

	// The origin the viewers reach never saw the stream.
	org := protectedArchiveOrigin(t, st, secret, keyPeriod, private)
	lc := newLicenseCounter(t, org)
	verifier, token := viewerToken(t, "enc")
	edge := startPoPNodes(t, lc.URL, 1, pop.Config{Tokens: verifier, KeyRate: 50, KeyBurst: 100})[0]
	vod := edge + "/t/" + token + "/vod/enc/" + epoch + "/"
	license := edge + "/t/" + token + "/live/enc/license"

	// Decrypted with the keys the key URIs give, through the PoP, every
	// video segment is media ffmpeg decodes without an error; and the
	// playlist names at least five keys.
	plURL := vod + "v0/index.m3u8"
	var pl playlist.Media
	if err := pl.Unmarshal(mustGet(t, plURL)); err != nil {
		t.Fatal(err)
	}
	init := mustGet(t, resolveURL(t, mustParse(t, plURL), pl.Map.URI).String())
	decrypted := bytes.NewBuffer(mp4test.ClearInit(t, init))
	keyURIs := map[string]bool{}
	for _, seg := range pl.Segments {
		if seg.Key == nil {
			t.Fatalf("%s: no key", seg.URI)
		}
		// gohlslib keeps the last tag of a run: the ClearKey one here.
		keyURL := resolveURL(t, mustParse(t, plURL), seg.Key.URI)
		if o, ok := layout.Parse(strings.TrimPrefix(keyURL.Path, "/t/"+token)); !ok || o.Kind != layout.Key || o.Stream != "enc" {
			t.Fatalf("%s: key URI %s leads to %s, not to the stream's key delivery", seg.URI, seg.Key.URI, keyURL.Path)
		}
		keyURIs[keyURL.String()] = true
		value := mustGet(t, keyURL.String())
		enc := mustGet(t, resolveURL(t, mustParse(t, plURL), seg.URI).String())
		kid, iv := mp4test.MediaKey(t, init, enc)
		if fmt.Sprintf("%x", kid) != strings.TrimPrefix(keyURL.Path, keyURL.Path[:strings.LastIndexByte(keyURL.Path, '/')+1]) {
			t.Fatalf("%s is encrypted with KID %x, its key URI is %s", seg.URI, kid, keyURL.Path)
		}
		decrypted.Write(mp4test.Decrypt(t, init, enc, kid, value, iv))
	}
	if len(keyURIs) < seconds/int(keyPeriod.Seconds()) {
		t.Errorf("the VOD's video playlist names %d keys, want %d or more", len(keyURIs), seconds/int(keyPeriod.Seconds()))
	}
	decoded := filepath.Join(t.TempDir(), "decrypted.mp4")
	if err := os.WriteFile(decoded, decrypted.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(ctx, time.Minute, ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", decoded, "-f", "null", "-")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("ffmpeg decoding the decrypted video: %v\n%s", err, out)
	}

	// Without the token: refused at the PoP.
	for _, u := range []string{edge + "/live/enc/license", strings.Replace(firstKey(keyURIs), "/t/"+token, "", 1)} {
		method := http.MethodPost
		if strings.Contains(u, "/keys/") {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, u, strings.NewReader(`{"kids":["AAAAAAAAAAAAAAAAAAAAAA"],"type":"temporary"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", method, u, resp.StatusCode)
		}
	}

	site := protectedPlayers(t, vod+"manifest.mpd", vod+"index.m3u8", license, edge, edge+"/live/enc/license")
	bctx := newBrowser(t)
	// Played to the end, or failed.
	const ended = `(() => { const v = document.getElementById('v');
		return v.ended || v.duration > 0 && v.currentTime >= v.duration - 0.5 || window.__p.errors.length > 0; })()`
	for _, id := range []string{"shaka", "hls"} {
		lc.reset()
		if err := chromedp.Run(bctx, chromedp.Navigate(site+"/?p="+id)); err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(bctx, (seconds+20)*time.Second)
		err := chromedp.Run(pctx, chromedp.Poll(ended, nil))
		pcancel()
		var p played
		var duration float64
		var toEnd bool
		if err := chromedp.Run(bctx, chromedp.Evaluate(`window.__p`, &p),
			chromedp.Evaluate(`document.getElementById('v').duration || 0`, &duration),
			chromedp.Evaluate(`(() => { const v = document.getElementById('v'); return v.ended || v.duration > 0 && v.currentTime >= v.duration - 0.5; })()`, &toEnd)); err != nil {
			t.Fatal(err)
		}
		asked := lc.asked()
		t.Logf("%s: played to %.1f s of %.1f (to the end: %v), %d frames, longest freeze %.0f ms at %.2f s, licenses for %d KIDs, errors %v",
			id, p.T, duration, toEnd, p.Frames, p.Freeze, p.FreezeAt, asked, p.Errors)
		if asked == 0 {
			t.Errorf("%s asked for no key with its token", id)
		}
		if id != "shaka" {
			continue
		}
		switch {
		case err != nil || !toEnd || len(p.Errors) > 0 || duration < seconds-1:
			t.Errorf("%s did not play the VOD of %.1f s to its end: %+v", id, duration, p)
		case asked < len(keyURIs):
			t.Errorf("%s asked for %d keys of the %d the VOD names", id, asked, len(keyURIs))
		case p.Frames < (seconds-1)*25:
			t.Errorf("%s decoded %d frames of %d s", id, p.Frames, seconds)
		}
	}

	// The watch page, given the token, plays the VOD with dash.js, given
	// the license URL /api/vods names because the VOD is encrypted.
	lc.reset()
	if err := chromedp.Run(bctx, chromedp.Navigate(edge+"/?vod=enc/"+epoch+"&format=dash&token="+url.QueryEscape(token))); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, bctx, `window.__vod && (window.__vod.error || window.__vod.ended)`, (seconds+20)*time.Second)
	var w struct {
		Error  *string
		Stalls int
		Time   float64
		Frames int
	}
	if err := chromedp.Run(bctx, chromedp.Evaluate(`({Error: window.__vod.error, Stalls: window.__vod.stalls,
		Time: document.getElementById('video').currentTime,
		Frames: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames})`, &w)); err != nil {
		t.Fatal(err)
	}
	t.Logf("watch page, dash.js: played to %.1f s, %d frames, %d stalls, licenses for %d KIDs, error %v", w.Time, w.Frames, w.Stalls, lc.asked(), w.Error)
	if w.Error != nil || w.Time < seconds-1 || w.Frames < (seconds-1)*25 || lc.asked() < len(keyURIs) {
		t.Errorf("the watch page did not play the encrypted VOD to its end with dash.js, asking for its %d keys", len(keyURIs))
	}
}

// protectedArchiveOrigin serves, until the test ends, an origin that
// never saw a stream, on the archive st, with keys derived from secret.
func protectedArchiveOrigin(t *testing.T, st store.Store, secret []byte, keyPeriod time.Duration, rule func(string) origin.Access) string {
	t.Helper()
	keys, err := protection.NewStore(protection.StoreConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	org, err := origin.New(origin.Config{ArchiveStore: st, Access: rule,
		Protection: &origin.Protection{Keys: keys, KeyPeriod: keyPeriod}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(org.Close)
	return serveHTTP(t, org)
}

// mustParse parses u.
func mustParse(t *testing.T, u string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// firstKey returns one key of m.
func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

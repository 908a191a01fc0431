package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/protection"
)

// protectedPlayersPage plays an encrypted stream with EME ClearKey, each
// player on its own video: dash.js and Shaka Player from the MPD
// (%[1]s), hls.js from the multivariant playlist (%[2]s), all with the
// license URL %[3]s, which carries the viewer's token like the manifests;
// and dash.js again (#nokey) with a license URL without the token. The
// players' scripts come from %[4]s, Shaka Player's from %[5]s. For each
// video, window.__p records how far it played and its longest freeze
// after playback began.
const protectedPlayersPage = `<!doctype html><meta charset="utf-8">
<video id="dash" muted autoplay playsinline></video>
<video id="shaka" muted autoplay playsinline></video>
<video id="hls" muted autoplay playsinline></video>
<video id="nokey" muted autoplay playsinline></video>
<script src="%[4]s/static/vendor/dash.protection.min.js"></script>
<script>const dashProtection = dashjs; // the UMD build sets dashjs to its Protection factory</script>
<script src="%[4]s/static/vendor/dash.mediaplayer.min.js"></script>
<script>dashjs.Protection = dashProtection; // where MediaPlayer looks for it</script>
<script src="%[4]s/static/vendor/hls.min.js"></script>
<script src="%[5]s"></script>
<script>
window.__p = {};
window.__errors = [];
window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
for (const id of ['dash', 'shaka', 'hls', 'nokey']) {
  const v = document.getElementById(id);
  const s = window.__p[id] = {t: 0, start: null, freeze: 0, freezeAt: 0, frames: 0, errors: []};
  let last = 0, since = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (v.currentTime !== last) {
      if (s.start === null && v.currentTime > 0) s.start = v.currentTime;
      last = v.currentTime;
      since = now;
    } else if (s.start !== null && now - since > s.freeze) {
      s.freeze = now - since;
      s.freezeAt = v.currentTime;
    }
    s.t = v.currentTime;
    s.frames = v.getVideoPlaybackQuality().totalVideoFrames;
  }, 50);
}
const dashPlayer = (id, license) => {
  const p = dashjs.MediaPlayer().create();
  p.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__p[id].errors.push(JSON.stringify(e.error || e)));
  p.setProtectionData({'org.w3.clearkey': {serverURL: license}});
  p.initialize(document.getElementById(id), '%[1]s', true);
};
dashPlayer('dash', '%[3]s');
dashPlayer('nokey', '%[6]s');
// No shaka.polyfill.installAll(): its EME polyfills wrap requestMediaKeySystemAccess for the whole page, and dash.js then finds no key system.
(async () => {
  const p = new shaka.Player();
  p.addEventListener('error', (e) => window.__p.shaka.errors.push(String(e.detail && e.detail.code)));
  await p.attach(document.getElementById('shaka'));
  p.configure({drm: {servers: {'org.w3.clearkey': '%[3]s'}}});
  await p.load('%[1]s');
})().catch((e) => window.__p.shaka.errors.push('load ' + (e && e.code)));
const hls = new Hls({emeEnabled: true, drmSystems: {'org.w3.clearkey': {licenseUrl: '%[3]s'}}});
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.__p.hls.errors.push(d.details); });
hls.loadSource('%[2]s');
hls.attachMedia(document.getElementById('hls'));
</script>`

// played is what the page says of one player.
type played struct {
	T        float64  `json:"t"`
	Start    *float64 `json:"start"`
	Freeze   float64  `json:"freeze"`
	FreezeAt float64  `json:"freezeAt"`
	Frames   int      `json:"frames"`
	Errors   []string `json:"errors"`
}

// TestBrowserEncryptedStream: a stream published by ffmpeg, encrypted
// with a key period of 4 s and private, plays in Chromium with EME
// ClearKey through a 3-node PoP, with a valid token, in dash.js, Shaka
// Player and hls.js, on across three key changes: Shaka Player and hls.js
// without a stall (no freeze of 2 s, web.StallThreshold), dash.js with a
// pause of under 3 s at each key change; each player asking for the new keys
// as they come (the origin sees license requests for at least four
// KIDs). A license request without the token is refused with 401 at the
// PoP, and dash.js given that license URL, its media served, plays
// nothing.
func TestBrowserEncryptedStream(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	const keyPeriod = 4 * time.Second
	store, err := protection.NewStore(protection.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, Config{Origin: origin.Config{
		Window: 20 * time.Second,
		Access: func(name string) origin.Access { return origin.Access{Private: name == "enc"} },
		Protection: &origin.Protection{Keys: store, KeyPeriod: keyPeriod,
			Encrypt: func(name string) bool { return name == "enc" }},
	}})
	originURL := "http://" + a.OriginAddr().String()
	var mu sync.Mutex
	kids := map[string]int{} // KIDs asked for in license requests that reached the origin
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/license") {
			body, _ := io.ReadAll(r.Body)
			var req struct{ Kids []string }
			if json.Unmarshal(body, &req) == nil {
				mu.Lock()
				for _, k := range req.Kids {
					kids[k]++
				}
				mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		httpReverse(originURL).ServeHTTP(w, r)
	}))
	defer upstream.Close()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := access.New(access.Config{Keys: access.KeySet{"k1": pub}})
	if err != nil {
		t.Fatal(err)
	}
	bases := startPoPNodes(t, upstream.URL, 3, pop.Config{Tokens: verifier})
	token, err := access.Issue(priv, "k1", access.Claims{Stream: "enc", Expires: time.Now().Add(time.Hour), MaxAddrs: 2})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan error, 1)
	go func() {
		args := append(append([]string{}, x264GOP1s...), "-c:a", "aac", "-b:a", "64k")
		_, err := runCmd(ctx, 3*time.Minute, ffmpeg, ffmpegSource(a.rtmp+"enc", 90, args...)...)
		published <- err
	}()
	defer func() { cancel(); <-published }()
	a.waitLive(t, "enc", 20*time.Second)
	if st := a.streams(t)["enc"]; !st.Encrypted {
		t.Fatalf("/api/streams: enc not encrypted: %+v", st)
	}

	shakaJS, err := os.ReadFile(filepath.Join("testdata", "shaka", "shaka-player.dash.js"))
	if err != nil {
		t.Fatal(err)
	}
	path := "/t/" + token + "/live/enc/"
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/shaka.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(shakaJS)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, protectedPlayersPage, bases[1]+path+"manifest.mpd", bases[2]+path+"index.m3u8",
			bases[0]+path+"license", bases[0], "/shaka.js", bases[0]+"/live/enc/license")
	}))
	defer site.Close()

	bctx := newBrowser(t)
	if err := chromedp.Run(bctx, chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	players := func() map[string]played {
		var p map[string]played
		if err := chromedp.Run(bctx, chromedp.Evaluate(`window.__p`, &p)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Three key changes: 12 s of playback and more, from where each
	// player began.
	const span = 3*keyPeriod + time.Second
	js := fmt.Sprintf(`['dash', 'shaka', 'hls'].every((id) => { const s = window.__p[id]; return s.start !== null && s.t - s.start > %g; })`, span.Seconds())
	bctx2, cancel2 := context.WithTimeout(bctx, 75*time.Second)
	err = chromedp.Run(bctx2, chromedp.Poll(js, nil))
	cancel2()
	got := players()
	if err != nil {
		var errs []string
		chromedp.Run(bctx, chromedp.Evaluate(`window.__errors`, &errs))
		t.Fatalf("not all played %v: %+v; page errors %v", span, got, errs)
	}
	for _, id := range []string{"dash", "shaka", "hls"} {
		p := got[id]
		t.Logf("%s: played %.1f s from %.1f, %d frames, longest freeze %.0f ms at %.2f s, errors %v", id, p.T-*p.Start, *p.Start, p.Frames, p.Freeze, p.FreezeAt, p.Errors)
		// A stall is the picture frozen for web.StallThreshold (2 s).
		// dash.js makes its MediaSource anew at each Period change (the
		// new Period's ContentProtection differs), and pauses there,
		// 1.9 s in our runs: held to 3 s, reported in the README.
		limit := 2000.0
		if id == "dash" {
			limit = 3000
		}
		if p.Freeze >= limit {
			t.Errorf("%s froze for %.0f ms at %.2f s", id, p.Freeze, p.FreezeAt)
		}
	}
	mu.Lock()
	asked := len(kids)
	mu.Unlock()
	if asked < 4 {
		t.Errorf("license requests for %d KIDs (%v): the players did not follow the key changes", asked, kids)
	}

	// Without the token: the license request is refused at the PoP, and
	// dash.js given that license URL plays nothing.
	req, _ := http.NewRequest(http.MethodPost, bases[0]+"/live/enc/license", strings.NewReader(`{"kids":["AAAAAAAAAAAAAAAAAAAAAA"],"type":"temporary"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Cache-Control") == "" {
		t.Errorf("a license request without a token: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	// Decoded frames, not currentTime: dash.js seeks to the live edge
	// when it falls behind, frames or none.
	if p := got["nokey"]; p.Frames > 0 || len(p.Errors) == 0 || !strings.Contains(p.Errors[0], "401") {
		t.Errorf("dash.js without a key: %d frames decoded, errors %v", p.Frames, p.Errors)
	} else {
		t.Logf("nokey: no frame decoded, %d errors, the first %s", len(p.Errors), p.Errors[0])
	}
}

// TestBrowserEncryptedWatchPage: the watch page plays an encrypted stream
// (the demo, public here) with hls.js and dash.js, given the license URL
// beside the manifests because /api/streams says the stream is
// encrypted.
func TestBrowserEncryptedWatchPage(t *testing.T) {
	store, err := protection.NewStore(protection.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, Config{Demo: true, PoP: &pop.Config{}, Origin: origin.Config{
		Protection: &origin.Protection{Keys: store, KeyPeriod: 4 * time.Second},
	}})
	a.waitLive(t, DemoStream, 20*time.Second)
	if !a.streams(t)[DemoStream].Encrypted {
		t.Fatal("the demo is not encrypted")
	}
	ctx := newBrowser(t)
	for _, format := range []string{"hls", "dash"} {
		t.Run(format, func(t *testing.T) {
			checkPlays(t, ctx, fmt.Sprintf("%s/?stream=%s&format=%s", a.base, DemoStream, format))
		})
	}
}

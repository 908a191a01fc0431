package protection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/internal/browsertest"
)

// mapKeys is a KeyLookup over fixed keys of stream "cam".
type mapKeys map[KID]Key

func (m mapKeys) Lookup(_ context.Context, stream string, kid KID) (Key, error) {
	if k, ok := m[kid]; ok && stream == "cam" {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// browserPage plays the encrypted segments through MSE and EME ClearKey,
// as dash.js and Shaka Player do: a license session is opened for each
// "encrypted" event (the init segment's pssh, then each new KID's pssh in
// the moofs), its message posted to the license URL with a token.
const browserPage = `<!doctype html><html><body><video id="v" muted></video><script>
window.__t = {error: null, sessions: 0, licenses: 0, done: false};
const fail = e => { window.__t.error = String(e && (e.message || e)); };
(async () => {
  const v = document.getElementById('v');
  const tracks = %s;
  const access = await navigator.requestMediaKeySystemAccess('org.w3.clearkey', [{
    initDataTypes: ['cenc'],
    videoCapabilities: [{contentType: tracks[0].type, encryptionScheme: 'cbcs'}],
    audioCapabilities: [{contentType: tracks[1].type, encryptionScheme: 'cbcs'}]}]);
  const keys = await access.createMediaKeys();
  await v.setMediaKeys(keys);
  const seen = new Set();
  v.addEventListener('encrypted', e => {
    const id = btoa(String.fromCharCode(...new Uint8Array(e.initData)));
    if (seen.has(id)) return;
    seen.add(id);
    window.__t.sessions++;
    const s = keys.createSession('temporary');
    s.addEventListener('message', async m => {
      try {
        const r = await fetch('/license/cam', {method: 'POST', body: m.message,
          headers: {'Authorization': 'Bearer cam', 'Content-Type': 'application/json'}});
        if (!r.ok) throw new Error('license ' + r.status);
        await s.update(await r.arrayBuffer());
        window.__t.licenses++;
      } catch (err) { fail(err); }
    });
    s.generateRequest(e.initDataType, e.initData).catch(fail);
  });
  v.addEventListener('error', () => fail('video error ' + (v.error && v.error.message)));
  const ms = new MediaSource();
  v.src = URL.createObjectURL(ms);
  await new Promise(r => ms.addEventListener('sourceopen', r, {once: true}));
  const append = async (sb, url) => {
    const b = await (await fetch(url)).arrayBuffer();
    sb.appendBuffer(b);
    await new Promise((r, j) => { sb.onupdateend = r; sb.onerror = () => j('append ' + url); });
  };
  await Promise.all(tracks.map(async t => {
    const sb = ms.addSourceBuffer(t.type);
    await append(sb, '/' + t.name + '/init.mp4');
    for (let i = 0; i < t.segments; i++) await append(sb, '/' + t.name + '/' + i);
  }));
  ms.endOfStream();
  v.playbackRate = 2;
  v.addEventListener('ended', () => { window.__t.done = true; });
  await v.play();
})().catch(fail);
</script></body></html>`

// TestChromiumClearKey plays the encrypted demo clip (H.264 and AAC) in
// Chromium with EME ClearKey: 'cbcs' with subsample maps for video and
// whole-frame encryption without senc for audio, and a key rotation at
// segment 3 signalled in-band only (seig, pssh in the moofs). The clip
// must play to its end with every video frame decoded, after licenses for
// both KIDs were delivered by KeyServer.ServeLicense (a wrong key for the
// second period makes Chromium fail to decode at 3 s). Skipped without
// Chromium, unless CI is set.
func TestChromiumClearKey(t *testing.T) {
	ctx := browsertest.Start(t)
	v, a := demoClip(t)
	type track struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Segments int    `json:"segments"`
		init     []byte
		segs     [][]byte
	}
	var tracks []*track
	for _, p := range []struct {
		p     *packaged
		codec string
	}{{v, `video/mp4; codecs="avc1.64001e"`}, {a, `audio/mp4; codecs="mp4a.40.2"`}} {
		e := newEncryptor(t, p.p, testKey)
		tr := &track{Name: p.p.name, Type: p.codec, init: e.Init()}
		for _, s := range p.p.segs {
			key := testKey
			if s.Number >= 3 {
				key = testKey2
			}
			enc, err := e.Encrypt(nil, s.Data, key)
			if err != nil {
				t.Fatal(err)
			}
			tr.segs = append(tr.segs, enc)
		}
		tr.Segments = len(tr.segs)
		tracks = append(tracks, tr)
	}
	tracksJSON, err := json.Marshal(tracks)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		requested = map[KID]int{}
	)
	ks, err := NewKeyServer(KeyServerConfig{
		Keys: mapKeys{testKey.KID: testKey, testKey2.KID: testKey2},
		Authorize: func(r *http.Request, stream string) error {
			if r.Header.Get("Authorization") != "Bearer "+stream {
				return errors.New("no token")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /license/{stream}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if kids, err := parseLicenseRequest(body, 16); err == nil {
			mu.Lock()
			for _, k := range kids {
				requested[k]++
			}
			mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ks.ServeLicense(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, browserPage, tracksJSON)
	})
	for _, tr := range tracks {
		mux.HandleFunc("GET /"+tr.Name+"/init.mp4", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(tr.init) })
		mux.HandleFunc("GET /"+tr.Name+"/{n}", func(w http.ResponseWriter, r *http.Request) {
			var n int
			if _, err := fmt.Sscan(r.PathValue("n"), &n); err != nil || n < 0 || n >= len(tr.segs) {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(tr.segs[n])
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancelRun := context.WithTimeout(ctx, 60*time.Second)
	defer cancelRun()

	var state struct {
		Error    *string `json:"error"`
		Sessions int     `json:"sessions"`
		Licenses int     `json:"licenses"`
		Done     bool    `json:"done"`
		Frames   int     `json:"frames"`
		Time     float64 `json:"time"`
	}
	err = chromedp.Run(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.Poll(`window.__t && (window.__t.error || window.__t.done)`, nil),
		chromedp.Evaluate(`(() => { const v = document.getElementById('v');
			return Object.assign({}, window.__t, {frames: v.getVideoPlaybackQuality().totalVideoFrames, time: v.currentTime}); })()`, &state),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if state.Error != nil {
		t.Fatalf("page error: %s", *state.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("state %+v, license requests %v", state, requested)
	if requested[testKey.KID] == 0 || requested[testKey2.KID] == 0 || state.Licenses < 2 {
		t.Errorf("licenses for %v, want both KIDs", requested)
	}
	if state.Frames < 170 || state.Time < 5.9 {
		t.Errorf("played %.2f s, %d frames decoded; want the whole 6 s clip", state.Time, state.Frames)
	}
}

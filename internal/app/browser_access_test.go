package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/popnode"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/publisher"
)

// tokenPlayersPage plays a stream with dash.js and hls.js from entry URLs
// given whole (%[1]s the MPD's, %[2]s the multivariant playlist's), with
// the players' scripts from %[3]s.
const tokenPlayersPage = `<!doctype html><meta charset="utf-8">
<video id="dash" muted autoplay playsinline></video>
<video id="hls" muted autoplay playsinline></video>
<script src="%[3]s/static/vendor/dash.mediaplayer.min.js"></script>
<script src="%[3]s/static/vendor/hls.min.js"></script>
<script>
window.__errors = [];
const player = dashjs.MediaPlayer().create();
player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__errors.push('dash.js: ' + JSON.stringify(e.error || e)));
player.initialize(document.getElementById('dash'), '%[1]s', true);
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.__errors.push('hls.js: ' + d.details); });
hls.loadSource('%[2]s');
hls.attachMedia(document.getElementById('hls'));
</script>`

// startPoPNodes runs n PoP nodes sharing one key space, as cmd/pop runs
// them, in front of upstream, and returns their base URLs.
func startPoPNodes(t *testing.T, upstream string, n int, cfg pop.Config) []string {
	t.Helper()
	var lns []net.Listener
	var peers []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		peers = append(peers, "http://"+ln.Addr().String())
	}
	for i, ln := range lns {
		c := cfg
		c.Origins, c.Peers, c.Self = []string{upstream}, peers, peers[i]
		h, node, err := popnode.New(c, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { node.Run(ctx); close(done) }()
		srv := httpserve.New(h, nil)
		served := make(chan struct{})
		go func() { node.Serve(srv, ln); close(served) }()
		t.Cleanup(func() { srv.Close(); <-served; cancel(); <-done })
	}
	return peers
}

// TestBrowserPrivateStream: hls.js and dash.js play a private stream
// through a 3-node PoP from entry URLs with ?token=, redirected into the
// path form: every request they make carries the token. The same URL
// without a token gets 401 at every node that knows the stream, and the
// origin sees no request for it.
func TestBrowserPrivateStream(t *testing.T) {
	var mu sync.Mutex
	var seen []string // what the origin was asked
	a := startApp(t, Config{Origin: origin.Config{Window: 20 * time.Second,
		Access: func(name string) origin.Access { return origin.Access{Private: name == "priv"} }}})
	originURL := "http://" + a.OriginAddr().String()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		httpReverse(originURL).ServeHTTP(w, r)
	}))
	defer upstream.Close()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifiers := func() *access.Verifier {
		v, err := access.New(access.Config{Keys: access.KeySet{"k1": pub}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	bases := startPoPNodes(t, upstream.URL, 3, pop.Config{Tokens: verifiers()})
	token, err := access.Issue(priv, "k1", access.Claims{Stream: "priv", Expires: time.Now().Add(time.Hour), MaxAddrs: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publishDemo(t, ctx, a, "priv")

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, tokenPlayersPage, bases[1]+"/live/priv/manifest.mpd?token="+token, bases[2]+"/live/priv/index.m3u8?token="+token, bases[0])
	}))
	defer site.Close()
	bctx := newBrowser(t)
	var reqMu sync.Mutex
	var requests []string
	chromedp.ListenTarget(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/priv/") {
			reqMu.Lock()
			requests = append(requests, e.Request.URL)
			reqMu.Unlock()
		}
	})
	if err := chromedp.Run(bctx, network.Enable(), chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, bctx, `document.getElementById('dash').currentTime > 2 && document.getElementById('hls').currentTime > 2`, 40*time.Second)
	var errs []string
	if err := chromedp.Run(bctx, chromedp.Evaluate(`window.__errors`, &errs)); err != nil || len(errs) > 0 {
		t.Errorf("player errors: %v %v", errs, err)
	}
	reqMu.Lock()
	n := 0
	for _, u := range requests {
		if strings.Contains(u, "?token=") {
			continue // the entry URLs, redirected
		}
		n++
		if !strings.Contains(u, "/t/"+token+"/live/priv/") {
			t.Errorf("a request without the token in its path: %s", u)
		}
	}
	reqMu.Unlock()
	if n < 10 {
		t.Errorf("%d requests of the players seen", n)
	}

	// Without the token: 401, and nothing reaches the origin. A node
	// learns that a stream is private from its first response of it, so
	// a viewer with the token comes through every node first: node 0
	// served the players only their scripts, and learned the stream's
	// rules only if the ring made it the owner of something they asked.
	for _, base := range bases {
		mustGet(t, base+"/t/"+token+"/live/priv/index.m3u8")
	}
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	for _, base := range bases {
		code, _ := get(t, base+"/live/priv/index.m3u8")
		if code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", base, code)
		}
	}
	mu.Lock()
	for _, u := range seen[before:] {
		if strings.HasSuffix(u, "/live/priv/index.m3u8") {
			t.Errorf("the origin saw a request without a token: %s", u)
		}
	}
	mu.Unlock()
}

// publishDemo publishes the demo clip in a loop as stream name until ctx
// is done, and waits until the stream is live.
func publishDemo(t *testing.T, ctx context.Context, a *testApp, name string) {
	t.Helper()
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		publisher.Publish(ctx, publisher.Config{URL: a.rtmp + name, Clip: clip})
	}()
	t.Cleanup(func() { <-done })
	a.waitLive(t, name, 20*time.Second)
}

// httpReverse is a reverse proxy to base.
func httpReverse(base string) http.Handler {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// TestBrowserWatchPageToken: the watch page given ?token= plays a private
// stream through the app's PoP in HLS and in DASH, every player request
// carrying the token in its path; without the token the player fails
// (401) and says so.
func TestBrowserWatchPageToken(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := access.New(access.Config{Keys: access.KeySet{"k1": pub}})
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, Config{Origin: origin.Config{Window: 20 * time.Second,
		Access: func(name string) origin.Access { return origin.Access{Private: name == "priv"} }},
		PoP: &pop.Config{Tokens: v}})
	token, err := access.Issue(priv, "k1", access.Claims{Stream: "priv", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publishDemo(t, ctx, a, "priv")

	bctx := newBrowser(t)
	var reqMu sync.Mutex
	var requests []string
	chromedp.ListenTarget(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/live/priv/") {
			reqMu.Lock()
			requests = append(requests, e.Request.URL)
			reqMu.Unlock()
		}
	})
	if err := chromedp.Run(bctx, network.Enable()); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"hls", "dash"} {
		reqMu.Lock()
		requests = requests[:0]
		reqMu.Unlock()
		if err := chromedp.Run(bctx, chromedp.Navigate(a.base+"/?stream=priv&format="+format+"&token="+token)); err != nil {
			t.Fatal(err)
		}
		awaitPlaying(t, bctx, 30*time.Second)
		if s := state(t, bctx); s.Error != nil || !s.Playing {
			t.Errorf("%s with the token: playing %v, error %v", format, s.Playing, s.Error)
		}
		reqMu.Lock()
		if len(requests) < 3 {
			t.Errorf("%s: %d player requests seen", format, len(requests))
		}
		for _, u := range requests {
			if !strings.Contains(u, "/t/"+token+"/live/priv/") {
				t.Errorf("%s: a request without the token in its path: %s", format, u)
			}
		}
		reqMu.Unlock()
	}
	// Without it: the player's error, not playback.
	if err := chromedp.Run(bctx, chromedp.Navigate(a.base+"/?stream=priv&format=hls")); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, bctx, `window.__live && window.__live.error !== null`, 30*time.Second)
	if s := state(t, bctx); s.Playing {
		t.Errorf("played without a token")
	}
}

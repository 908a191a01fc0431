package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/browsertest"
	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/popnode"
	"github.com/golivestream/live/internal/relay"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/publisher"
	"github.com/golivestream/live/transcode"
	"github.com/golivestream/live/web"
)

// newBrowser starts Debian's headless Chromium for the test (see
// browsertest.Start).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t)
}

// playerState is what the watch page publishes as window.__live, with the
// video element's figures.
type playerState struct {
	Error       *string  `json:"error"`
	Playing     bool     `json:"playing"`
	Stalls      int      `json:"stalls"`
	CurrentTime float64  `json:"currentTime"`
	Frames      int      `json:"frames"`
	FirstFrame  *float64 `json:"firstFrameMs"`
}

const playerStateJS = `(() => {
	const v = document.getElementById('video');
	const l = window.__live || {};
	const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
	return {error: l.error || null, playing: !!l.playing, stalls: l.stalls || 0,
		currentTime: v ? v.currentTime : 0, frames: q.totalVideoFrames, firstFrameMs: l.firstFrameMs ?? null};
})()`

func state(t *testing.T, ctx context.Context) playerState {
	t.Helper()
	var s playerState
	if err := chromedp.Run(ctx, chromedp.Evaluate(playerStateJS, &s)); err != nil {
		t.Fatalf("read player state: %v", err)
	}
	return s
}

// awaitPlaying waits, on the page's own events, until the video plays.
func awaitPlaying(t *testing.T, ctx context.Context, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := chromedp.Run(ctx, chromedp.Poll(`window.__live && (window.__live.error || (window.__live.playing && document.getElementById('video').currentTime > 0))`, nil))
	if err != nil {
		t.Fatalf("video did not start within %v: %v", timeout, err)
	}
}

// checkPlays opens the watch page at url and checks that the video plays:
// currentTime advances by at least 6 s in 8 s, with no player error and
// decoded frames.
func checkPlays(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	awaitPlaying(t, ctx, 30*time.Second)
	before := state(t, ctx)
	if before.Error != nil {
		t.Fatalf("player error: %s", *before.Error)
	}
	<-time.After(8 * time.Second) // playback over time is what is measured
	after := state(t, ctx)
	if after.Error != nil {
		t.Errorf("player error: %s", *after.Error)
	}
	if adv := after.CurrentTime - before.CurrentTime; adv < 6 {
		t.Errorf("currentTime advanced %.2f s in 8 s (from %.2f), want at least 6", adv, before.CurrentTime)
	}
	if after.Frames <= 0 {
		t.Errorf("no decoded frames")
	}
	if after.FirstFrame == nil {
		t.Errorf("the page did not measure its first frame")
	}
}

// TestBrowserPlayback opens the watch page in Chromium for HLS (hls.js) and
// DASH (dash.js), on cmd/live's server (a PoP in front of the origin) and
// through a separate PoP node as cmd/pop runs it.
func TestBrowserPlayback(t *testing.T) {
	a := startApp(t, Config{Demo: true, PoP: &pop.Config{}})
	a.waitLive(t, DemoStream, 20*time.Second)
	edge := startPoPNode(t, a.base)
	ctx := newBrowser(t)
	for _, tc := range []struct{ name, base string }{
		{"live", a.base},
		{"pop", edge},
	} {
		for _, format := range []string{"hls", "dash"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				checkPlays(t, ctx, fmt.Sprintf("%s/?stream=%s&format=%s", tc.base, DemoStream, format))
			})
		}
	}
	// The list page lists the demo stream.
	var names []string
	err := chromedp.Run(ctx, chromedp.Navigate(a.base+"/"),
		chromedp.Poll(`document.querySelectorAll('a[href*="stream=demo"]').length > 0`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.Evaluate(`[...document.querySelectorAll('a[href*="stream="]')].map(a => a.textContent)`, &names))
	if err != nil {
		t.Errorf("stream list page: %v", err)
	}
}

// startPoPNode runs a PoP node as cmd/pop does, in front of upstream.
func startPoPNode(t *testing.T, upstream string) string {
	t.Helper()
	h, node, err := popnode.New(pop.Config{Origins: []string{upstream}}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	base := serveHTTP(t, h)
	t.Cleanup(func() { cancel(); <-done })
	return base
}

// TestBrowserStallBeacon: the publisher's uplink freezes mid-play, the page
// stalls, and its beacon puts a stalled user in the stream's one-minute
// figures (API and metrics).
func TestBrowserStallBeacon(t *testing.T) {
	a := startApp(t, Config{PoP: &pop.Config{}, Origin: origin.Config{Window: 20 * time.Second}})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	proxy := relay.Start(t, a.RTMPAddr().String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- publisher.Publish(ctx, publisher.Config{
			URL: "rtmp://" + proxy.Addr() + "/live/stall", Clip: clip,
		})
	}()
	a.waitLive(t, "stall", 20*time.Second)

	browser := newBrowser(t)
	if err := chromedp.Run(browser, chromedp.Navigate(a.base+"/?stream=stall&format=hls")); err != nil {
		t.Fatal(err)
	}
	awaitPlaying(t, browser, 30*time.Second)
	if s := state(t, browser); s.Error != nil || s.Stalls != 0 {
		t.Fatalf("before the freeze: error %v, %d stalls", s.Error, s.Stalls)
	}

	proxy.Freeze() // the uplink freezes: no more segments, the buffer drains
	sctx, scancel := context.WithTimeout(browser, 30*time.Second)
	defer scancel()
	if err := chromedp.Run(sctx, chromedp.Poll(`window.__live.stalls >= 1`, nil)); err != nil {
		t.Fatalf("the page saw no stall: %v (%+v)", err, state(t, browser))
	}
	waitFor(t, 10*time.Second, "the stall in the one-minute figures", func() bool {
		var body struct{ Streams []web.StreamView }
		if err := json.Unmarshal(mustGet(t, a.base+"/api/streams"), &body); err != nil {
			t.Fatal(err)
		}
		for _, s := range body.Streams {
			if s.Name == "stall" {
				return s.QoE.Stalled >= 1 && s.QoE.Users >= 1 && s.QoE.StallRate > 0
			}
		}
		return false
	})
	code, metrics := get(t, a.base+"/metrics")
	if code != http.StatusOK || !containsLine(string(metrics), `live_qoe_stalled_users{stream="stall"} 1`) {
		t.Errorf("metrics lack the stalled user:\n%s", metrics)
	}
	cancel()
	<-pubDone
}

func containsLine(text, line string) bool {
	return slices.Contains(strings.Split(text, "\n"), line)
}

// TestBrowserABRSwitch plays the demo stream's ladder (its 360p source and
// a 240p rendition) with hls.js and forces a switch each way: each switch
// happens (LEVEL_SWITCHED to the forced level) and playback goes on
// without a stall, the video element waiting for data once at most, and
// for less than a second. (The watch page plays 1 s behind live, and the
// transcoded rung's parts come a fifth of a second after the source's,
// its transcoder's delay: a switch down to it there may wait that long,
// as it did here in about one run of three, for 6 to 308 ms.)
func TestBrowserABRSwitch(t *testing.T) {
	requireTool(t, "ffmpeg")
	a := startApp(t, Config{Demo: true, PoP: &pop.Config{}, Transcode: &transcode.Config{}})
	waitFor(t, 30*time.Second, "the demo's ladder rendition", func() bool {
		code, body := get(t, a.base+"/live/"+DemoStream+"/index.m3u8")
		return code == 200 && bytes.Count(body, []byte("#EXT-X-STREAM-INF")) == 2
	})
	ctx := newBrowser(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(a.base+"/?stream="+DemoStream+"&format=hls")); err != nil {
		t.Fatal(err)
	}
	awaitPlaying(t, ctx, 30*time.Second)
	var levels int
	err := chromedp.Run(ctx, chromedp.Evaluate(`(() => {
		window.__waits = 0;
		window.__waited = 0; // ms spent waiting, to the next 'playing'
		const v = document.getElementById('video');
		let since = null;
		v.addEventListener('waiting', () => { window.__waits++; since = performance.now(); });
		v.addEventListener('playing', () => { if (since !== null) { window.__waited += performance.now() - since; since = null; } });
		window.__switched = [];
		window.__hls.on(Hls.Events.LEVEL_SWITCHED, (ev, d) => window.__switched.push(d.level));
		return window.__hls.levels.length;
	})()`, &levels))
	if err != nil {
		t.Fatal(err)
	}
	if levels != 2 {
		t.Fatalf("hls.js sees %d levels, want 2", levels)
	}
	for i := range 2 {
		var target int
		if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => {
			window.__waits = 0; window.__waited = 0; // this switch's
			const h = window.__hls, to = h.currentLevel === 0 ? 1 : 0;
			h.nextLevel = to; // switch at the next segment, as ABR does
			return to;
		})()`, &target)); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Run(sctx, chromedp.Poll(fmt.Sprintf(`window.__switched.includes(%d) && window.__hls.currentLevel === %d`, target, target), nil))
		cancel()
		if err != nil {
			t.Fatalf("switch %d: hls.js did not switch to level %d: %v", i, target, err)
		}
		before := state(t, ctx)
		<-time.After(4 * time.Second) // playback over time is what is measured
		after := state(t, ctx)
		if adv := after.CurrentTime - before.CurrentTime; adv < 3 {
			t.Errorf("switch %d: currentTime advanced %.2f s in 4 s", i, adv)
		}
		var waits int
		var waited float64
		if err := chromedp.Run(ctx, chromedp.Evaluate(`window.__waits`, &waits), chromedp.Evaluate(`window.__waited`, &waited)); err != nil {
			t.Fatal(err)
		}
		t.Logf("switch %d to level %d: %d waits, %.0f ms waited", i, target, waits, waited)
		if waits > 1 || waited >= 1000 || after.Stalls != 0 || after.Error != nil {
			t.Errorf("switch %d to level %d: %d waits (%.0f ms), %d stalls, error %v", i, target, waits, waited, after.Stalls, after.Error)
		}
	}
	// The browser's media requests went through the PoP's fast path.
	_, metrics := get(t, a.base+"/metrics")
	var fast float64
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(line, "live_pop_fast_requests_total "); ok {
			fast, _ = strconv.ParseFloat(v, 64)
		}
	}
	if fast < 10 {
		t.Errorf("the PoP's fast path answered %v requests of hls.js, want most of them", fast)
	}
}

// TestBrowserStreamComesBack: a stream ends (its publisher stops) and
// is published again, with another picture size. The watch page, which
// played the first one to its end, reloads itself and plays the second,
// in HLS and in DASH. (A setup change without the stream ending needs no
// reload: TestPlayersFollowNewEpoch.)
func TestBrowserStreamComesBack(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	parts := sizedFiles(t, requireTool(t, "ffmpeg"), sized{"320x240", 10}, sized{"640x360", 30})
	first := publishFiles(t, ctx, a, "back", parts[0])

	type tab struct {
		format string
		ctx    context.Context
		loads  chan struct{} // a page load finished
	}
	var tabs []tab
	for _, format := range []string{"hls", "dash"} {
		// A browser each: Chromium pauses the video of a background tab.
		tctx := newBrowser(t)
		tb := tab{format, tctx, make(chan struct{}, 4)}
		chromedp.ListenTarget(tctx, func(ev any) {
			if _, ok := ev.(*page.EventLoadEventFired); ok {
				select {
				case tb.loads <- struct{}{}:
				default: // never block the browser's event loop
				}
			}
		})
		if err := chromedp.Run(tctx, chromedp.Navigate(a.base+"/?stream=back&format="+format)); err != nil {
			t.Fatal(err)
		}
		awaitLoad(t, tb.loads, 20*time.Second)
		awaitPlaying(t, tctx, 30*time.Second)
		awaitHeight(t, tctx, 240)
		tabs = append(tabs, tb)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	second := publishFiles(t, ctx, a, "back", parts[1])
	for _, tb := range tabs {
		awaitLoad(t, tb.loads, 40*time.Second) // the page reloads itself
		awaitPlaying(t, tb.ctx, 30*time.Second)
		awaitHeightWithin(t, tb.ctx, 360, 30*time.Second)
		if s := state(t, tb.ctx); s.Error != nil {
			t.Errorf("%s: error %s after the stream came back", tb.format, *s.Error)
		}
	}
	stillPublishing(t, second)
	cancel() // the rest of the stream is not needed
	<-second
}

// publishSizeSwitch publishes stream name with ffmpeg relaying, in one
// RTMP connection, 8 s of 320x240 and then 30 s of 640x360 in real time,
// as an encoder changing its picture size mid-stream does; it waits until
// the stream is live. The channel gets how ffmpeg ended; cancel ctx to
// stop it.
func publishSizeSwitch(t *testing.T, ctx context.Context, a *testApp, name string) <-chan error {
	t.Helper()
	return publishFiles(t, ctx, a, name, sizedFiles(t, requireTool(t, "ffmpeg"), sized{"320x240", 8}, sized{"640x360", 30})...)
}

// stillPublishing fails the test if the publisher whose end done reports
// has stopped: the test needed it until now.
func stillPublishing(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the publisher stopped before the end of the test: %v", err)
	default:
	}
}

// publishFiles publishes stream name with ffmpeg relaying files, one
// after the other in one RTMP connection, in real time; it waits until
// the stream is live. The channel gets how ffmpeg ended, after it
// unpublished; cancel ctx to stop it.
func publishFiles(t *testing.T, ctx context.Context, a *testApp, name string, files ...string) <-chan error {
	t.Helper()
	ffmpeg := requireTool(t, "ffmpeg")
	done := make(chan error, 1)
	go func() {
		out, err := runCmd(ctx, 2*time.Minute, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
			"-i", "concat:"+strings.Join(files, "|"), "-c", "copy", "-f", "flv", a.rtmp+name)
		if err != nil {
			err = fmt.Errorf("ffmpeg: %w\n%s", err, out)
		}
		done <- err
	}()
	a.waitLive(t, name, 20*time.Second)
	return done
}

// awaitLoad waits for the next page load event.
func awaitLoad(t *testing.T, loads <-chan struct{}, timeout time.Duration) {
	t.Helper()
	select {
	case <-loads:
	case <-time.After(timeout):
		t.Fatalf("no page load within %v", timeout)
	}
}

// awaitHeight waits, on the page, until the video plays pictures of the
// given height.
func awaitHeight(t *testing.T, ctx context.Context, height int) {
	t.Helper()
	awaitHeightWithin(t, ctx, height, 20*time.Second)
}

// pollWithin waits, on the page, until the expression js is true.
func pollWithin(t *testing.T, ctx context.Context, js string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Poll(js, nil)); err != nil {
		t.Fatalf("not within %v: %s: %v", timeout, js, err)
	}
}

// awaitHeightWithin is awaitHeight with a timeout.
func awaitHeightWithin(t *testing.T, ctx context.Context, height int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	js := fmt.Sprintf(`document.getElementById('video').videoHeight === %d`, height)
	if err := chromedp.Run(ctx, chromedp.Poll(js, nil)); err != nil {
		var h int
		chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate(`document.getElementById('video').videoHeight`, &h))
		t.Fatalf("video height %d, want %d: %v", h, height, err)
	}
}

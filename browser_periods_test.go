package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/origin"
)

// barePlayerPage is a third-party page playing an MPD with nothing but
// dash.js: none of the watch page's reloading.
const barePlayerPage = `<!doctype html><meta charset="utf-8">
<video id="video" muted autoplay playsinline></video>
<script src="%[1]s/static/vendor/dash.mediaplayer.min.js"></script>
<script>
window.__errors = [];
const player = dashjs.MediaPlayer().create();
player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__errors.push(JSON.stringify(e.error || e)));
// What happened, for a failure's report.
window.__log = [];
for (const ev of ['PERIOD_SWITCH_STARTED', 'PERIOD_SWITCH_COMPLETED', 'STREAM_INITIALIZED', 'PLAYBACK_WAITING', 'PLAYBACK_STALLED', 'MANIFEST_LOADED', 'BUFFER_EMPTY']) {
  player.on(dashjs.MediaPlayer.events[ev], () => window.__log.push(ev + '@' + document.getElementById('video').currentTime.toFixed(2)));
}
player.initialize(document.getElementById('video'), '%[1]s/live/%[2]s/manifest.mpd', true);
</script>`

// TestDASHPlayerFollowsNewPeriod: an encoder changes its picture size
// mid-stream (ffmpeg relaying 320x240, then 640x360, in one RTMP
// connection). The new setup is a new epoch, which the MPD at the same
// URL describes as the next Period of the same presentation: a plain
// dash.js, on a page of another origin that knows nothing of epochs,
// plays on into the new size without a reload or an error.
func TestDASHPlayerFollowsNewPeriod(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := publishSizeSwitch(t, ctx, a, "periods")

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, barePlayerPage, a.base, "periods")
	}))
	defer site.Close()

	bctx := newBrowser(t)
	loads := make(chan struct{}, 4)
	chromedp.ListenTarget(bctx, func(ev any) {
		if _, ok := ev.(*page.EventLoadEventFired); ok {
			select {
			case loads <- struct{}{}:
			default:
			}
		}
	})
	if err := chromedp.Run(bctx, chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	awaitLoad(t, loads, 20*time.Second)
	awaitHeight(t, bctx, 240)
	var before float64
	if err := chromedp.Run(bctx, chromedp.Evaluate(`document.getElementById('video').currentTime`, &before)); err != nil {
		t.Fatal(err)
	}

	// The switch comes about 8 s into the stream; the player gets there
	// by playing, without a reload.
	t.Cleanup(func() { // a failure's report: the player's events and requests, the MPD
		if !t.Failed() {
			return
		}
		var diag string
		chromedp.Run(context.WithoutCancel(bctx), chromedp.Evaluate(`JSON.stringify({errors: window.__errors, t: document.getElementById('video').currentTime,
			h: document.getElementById('video').videoHeight, paused: document.getElementById('video').paused,
			buffered: Array.from({length: document.getElementById('video').buffered.length}, (_, i) => [document.getElementById('video').buffered.start(i), document.getElementById('video').buffered.end(i)]),
			log: window.__log, res: performance.getEntriesByType('resource').map((e) => e.name.replace(/^.*\/live\//, '') + ' ' + e.responseStatus + ' @' + (e.startTime/1000).toFixed(2)).slice(-60)})`, &diag))
		_, mpd := get(t, a.base+"/live/periods/manifest.mpd")
		t.Logf("player: %s\nMPD:\n%s", diag, mpd)
	})
	awaitHeightWithin(t, bctx, 360, 40*time.Second)
	var after float64
	var errs []string
	if err := chromedp.Run(bctx,
		chromedp.Evaluate(`document.getElementById('video').currentTime`, &after),
		chromedp.Evaluate(`window.__errors`, &errs)); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Errorf("dash.js errors: %v", errs)
	}
	if after <= before {
		t.Errorf("currentTime went from %.1f to %.1f across the switch", before, after)
	}
	select {
	case <-loads:
		t.Error("the page reloaded")
	default:
	}
	code, body := get(t, a.base+"/live/periods/manifest.mpd")
	if code != http.StatusOK {
		t.Fatalf("MPD: %d", code)
	}
	if n := strings.Count(string(body), "<Period "); n != 2 {
		t.Errorf("MPD has %d periods, want the two epochs:\n%s", n, body)
	}
	validateMPD(t, body)

	select {
	case err := <-pubDone:
		t.Fatalf("the publisher stopped before the end of the test: %v", err)
	default:
	}
	cancel()
	<-pubDone
}

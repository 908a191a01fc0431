package app

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

// barePlayersPage is a third-party page playing one stream twice, with
// nothing but dash.js (the MPD) and hls.js (the multivariant playlist):
// none of the watch page's reloading.
const barePlayersPage = `<!doctype html><meta charset="utf-8">
<video id="dash" muted autoplay playsinline></video>
<video id="hls" muted autoplay playsinline></video>
<script src="%[1]s/static/vendor/dash.mediaplayer.min.js"></script>
<script src="%[1]s/static/vendor/hls.min.js"></script>
<script>
// Errors, and what happened, for a failure's report.
window.__errors = [];
// Every SourceBuffer, dash.js's then hls.js's, for their own buffered
// ranges: the video element's are their intersection.
window.__sbs = [];
const origAdd = MediaSource.prototype.addSourceBuffer;
MediaSource.prototype.addSourceBuffer = function (mime) { const sb = origAdd.call(this, mime); window.__sbs.push({mime, sb}); return sb; };
window.__log = [];
const dashVideo = document.getElementById('dash'), hlsVideo = document.getElementById('hls');
const player = dashjs.MediaPlayer().create();
player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__errors.push('dash.js: ' + JSON.stringify(e.error || e)));
for (const ev of ['PLAYBACK_SEEKED', 'PERIOD_SWITCH_STARTED', 'PERIOD_SWITCH_COMPLETED', 'STREAM_INITIALIZED', 'PLAYBACK_WAITING', 'PLAYBACK_STALLED', 'MANIFEST_LOADED', 'BUFFER_EMPTY']) {
  player.on(dashjs.MediaPlayer.events[ev], () => window.__log.push('dash.js ' + ev + '@' + dashVideo.currentTime.toFixed(2)));
}
player.initialize(dashVideo, '%[1]s/live/%[2]s/manifest.mpd', true);

const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => {
  const what = 'hls.js: ' + d.type + ' ' + d.details + (d.fatal ? ' (fatal)' : '');
  (d.fatal ? window.__errors : window.__log).push(what + '@' + hlsVideo.currentTime.toFixed(2));
});
hls.on(Hls.Events.FRAG_CHANGED, (_, d) => window.__log.push('hls.js playing ' + d.frag.relurl + ' cc ' + d.frag.cc + '@' + hlsVideo.currentTime.toFixed(2)));
for (const ev of ['LEVEL_LOADED', 'AUDIO_TRACK_LOADED']) {
  hls.on(Hls.Events[ev], (_, d) => window.__log.push('hls.js ' + ev + ' ' + d.details.url.replace(/^.*\/live\//, '') +
    (d.details.live ? '' : ' ENDLIST') + ' last ' + d.details.endSN + ' cc ' + d.details.endCC + '@' + hlsVideo.currentTime.toFixed(2)));
}
hls.loadSource('%[1]s/live/%[2]s/index.m3u8');
hls.attachMedia(hlsVideo);
</script>`

// TestPlayersFollowNewEpoch: an encoder changes its picture size
// mid-stream (ffmpeg relaying 320x240, then 640x360, in one RTMP
// connection), then its connection is lost and it comes back at
// 512x288. Each new setup is a new epoch. The MPD at the same URL
// describes it as the next Period of the same presentation, and the old
// epoch's HLS media playlists go on into the new epoch's segments after a
// discontinuity: a plain dash.js and a plain hls.js, on a page of
// another origin that knows nothing of epochs, both play on into each
// new size through the PoP, without a reload or an error. (It failed
// now and then: hls.js, in low-latency mode by default, stopped when a
// blocking reload held on the first epoch's playlist was answered with
// that playlist ended; dash.js when its jump over a gap of a few frames
// between two Periods landed a microsecond short of the next range.)
func TestPlayersFollowNewEpoch(t *testing.T) {
	a := startApp(t, Config{Origin: origin.Config{Window: time.Minute}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubCtx, lose := context.WithCancel(ctx)
	pubDone := publishSizeSwitch(t, pubCtx, a, "periods")
	_, mv := get(t, a.base+"/live/periods/index.m3u8")
	oldPlaylist := a.base + "/live/periods/" + strings.TrimSpace(lastLine(string(mv)))

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, barePlayersPage, a.base, "periods")
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
	both := func(height int) string {
		return fmt.Sprintf(`document.getElementById('dash').videoHeight === %[1]d && document.getElementById('hls').videoHeight === %[1]d`, height)
	}
	pollWithin(t, bctx, both(240), 20*time.Second)
	var before []float64
	times := `[document.getElementById('dash').currentTime, document.getElementById('hls').currentTime]`
	if err := chromedp.Run(bctx, chromedp.Evaluate(times, &before)); err != nil {
		t.Fatal(err)
	}

	// The switch comes about 8 s into the stream; the players get there
	// by playing, without a reload.
	t.Cleanup(func() { // a failure's report: the players' events and requests, the manifests
		if !t.Failed() {
			return
		}
		var diag string
		chromedp.Run(context.WithoutCancel(bctx), chromedp.Evaluate(`JSON.stringify({errors: window.__errors, log: window.__log,
			videos: ['dash', 'hls'].map((id) => { const v = document.getElementById(id); return {id, t: v.currentTime, h: v.videoHeight, paused: v.paused,
				buffered: Array.from({length: v.buffered.length}, (_, i) => [v.buffered.start(i), v.buffered.end(i)])}; }),
			sbs: window.__sbs.map((x) => { try { return x.mime + ' ' + JSON.stringify(Array.from({length: x.sb.buffered.length}, (_, i) => [x.sb.buffered.start(i), x.sb.buffered.end(i)])); } catch (e) { return x.mime + ' gone'; } }),
			res: performance.getEntriesByType('resource').map((e) => e.name.replace(/^.*\/live\//, '') + ' ' + e.responseStatus + ' @' + (e.startTime/1000).toFixed(2)).slice(-80)})`, &diag))
		_, mpd := get(t, a.base+"/live/periods/manifest.mpd")
		_, pl := get(t, oldPlaylist)
		t.Logf("players: %s\nMPD:\n%s\nfirst epoch's video playlist:\n%s", diag, mpd, pl)
	})
	// checkSwitch checks what the players did to reach height.
	checkSwitch := func(height int, periods int) {
		t.Helper()
		pollWithin(t, bctx, both(height), 40*time.Second)
		var after []float64
		var errs []string
		if err := chromedp.Run(bctx,
			chromedp.Evaluate(times, &after),
			chromedp.Evaluate(`window.__errors`, &errs)); err != nil {
			t.Fatal(err)
		}
		if len(errs) > 0 {
			t.Errorf("player errors: %v", errs)
		}
		for i, name := range []string{"dash.js", "hls.js"} {
			if after[i] <= before[i] {
				t.Errorf("%s: currentTime went from %.1f to %.1f across the switch to %dp", name, before[i], after[i], height)
			}
		}
		before = after
		select {
		case <-loads:
			t.Error("the page reloaded")
		default:
		}
		code, body := get(t, a.base+"/live/periods/manifest.mpd")
		if code != http.StatusOK {
			t.Fatalf("MPD: %d", code)
		}
		if n := strings.Count(string(body), "<Period "); n != periods {
			t.Errorf("MPD has %d periods, want %d epochs:\n%s", n, periods, body)
		}
		validateMPD(t, body)
		code, body = get(t, oldPlaylist)
		if n := strings.Count(string(body), "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"../../"); code != http.StatusOK || n != periods-1 {
			t.Errorf("the first epoch's video playlist: %d, with %d later epochs after a discontinuity, want %d:\n%s", code, n, periods-1, body)
		}
	}
	checkSwitch(360, 2)

	// The publisher is lost (killed: no unpublish), and back within the
	// reconnect window at another size: a third epoch, after a gap in the
	// media, that the players go on into too.
	stillPublishing(t, pubDone)
	lose()
	<-pubDone
	ffmpeg := requireTool(t, "ffmpeg")
	pubDone = publishFiles(t, ctx, a, "periods", sizedFiles(t, ffmpeg, sized{"512x288", 30})...)
	checkSwitch(288, 3)

	stillPublishing(t, pubDone)
	cancel()
	<-pubDone
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

package app

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/transcode"
)

// publishFor publishes seconds of a 640x360 test pattern at 30 fps (a
// keyframe a second) and a tone, in real time, as stream name; the
// channel gets how ffmpeg ended.
func publishFor(t *testing.T, ctx context.Context, a *testApp, name string, seconds int) <-chan error {
	t.Helper()
	ffmpeg := requireTool(t, "ffmpeg")
	d := fmt.Sprint(seconds)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + d}
	args = append(append(args, x264GOP1s...), "-c:a", "aac", "-b:a", "64k", "-f", "flv", a.rtmp+name)
	done := make(chan error, 1)
	go func() {
		out, err := runCmd(ctx, time.Duration(seconds+60)*time.Second, ffmpeg, args...)
		if err != nil {
			err = fmt.Errorf("ffmpeg: %w\n%s", err, out)
		}
		done <- err
	}()
	a.waitLive(t, name, 20*time.Second)
	return done
}

// TestBrowserVOD: a stream published with ffmpeg for 20 s, with its
// ladder, then stopped, is a VOD. Every file of every rendition the live
// origin served while it ran (fetched then, through the PoP) is in it,
// byte for byte, read back through an origin that never saw the stream;
// ffprobe reads as many packets from each VOD rendition as from the
// live one; and the watch page lists the VOD and plays it to its end in
// hls.js and in dash.js, through a PoP node in front of that origin.
func TestBrowserVOD(t *testing.T) {
	t.Parallel() // beside TestBrowserDVR's wait: see there
	ffprobe := requireTool(t, "ffprobe")
	st := newDirStore(t)
	a := startApp(t, Config{Archive: &Archive{Store: st}, PoP: &pop.Config{}, Transcode: &transcode.Config{}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const seconds = 20
	done := publishFor(t, ctx, a, "vod", seconds)

	// What the live origin serves, fetched as it is listed.
	live := map[string][]byte{} // by path
	fetchLive := func() {
		for _, fs := range files(t, a.base+"/live/vod/index.m3u8") {
			for _, f := range fs {
				if p := pathOf(t, f); live[p] == nil {
					live[p] = mustGet(t, f)
				}
			}
		}
	}
	tick := time.NewTicker(time.Second)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		case <-tick.C:
			fetchLive()
		}
	}
	tick.Stop()
	a.waitEnded(t, "vod", 20*time.Second)
	fetchLive()
	livePlaylists := files(t, a.base+"/live/vod/index.m3u8")
	a.flushArchive(t)

	var epoch string
	for p := range live {
		o, _ := layout.Parse(p)
		epoch = o.Epoch
	}
	renditions := map[string]bool{}
	for p := range live {
		o, _ := layout.Parse(p)
		renditions[o.Rendition] = true
	}
	if len(renditions) < 3 {
		t.Fatalf("the live stream had renditions %v, want the source, a ladder rendition and audio", slices.Sorted(maps.Keys(renditions)))
	}

	org := archiveOrigin(t, st)
	vodMV := org + "/vod/vod/" + epoch + "/index.m3u8"
	vod := files(t, vodMV)
	seen := map[string]bool{}
	for pl, fs := range vod {
		for _, f := range fs {
			p := pathOf(t, f)
			seen[p] = true
			want, ok := live[p]
			if !ok {
				t.Errorf("%s lists %s, which the live origin never served", pl, p)
				continue
			}
			if got := mustGet(t, f); !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes from the archive, %d served live", p, len(got), len(want))
			}
		}
	}
	for p := range live {
		if !seen[p] {
			t.Errorf("%s was served live, and is not in the VOD", p)
		}
	}

	// ffprobe, rendition by rendition, live (still in memory) and VOD.
	livePL := map[string]string{}
	for pl := range livePlaylists {
		o, _ := layout.Parse(pathOf(t, pl))
		livePL[o.Rendition] = pl
	}
	for pl := range vod {
		o, _ := layout.Parse(pathOf(t, pl))
		lv, la := probe(t, ffprobe, livePL[o.Rendition])
		vv, va := probe(t, ffprobe, pl)
		if len(vv) != len(lv) || len(va) != len(la) || len(vv)+len(va) == 0 {
			t.Errorf("%s: ffprobe read %d video and %d audio packets from the VOD, %d and %d live", o.Rendition, len(vv), len(va), len(lv), len(la))
		}
		if o.Rendition == "v0" && len(vv) != seconds*30 {
			t.Errorf("v0: %d video packets in the VOD, %d published", len(vv), seconds*30)
		}
	}

	// The watch page, through a PoP node in front of the archive's origin.
	edge := startPoPNode(t, org)
	browser := newBrowser(t)
	link := `a[href*="vod=vod/` + epoch + `"]`
	if err := chromedp.Run(browser, chromedp.Navigate(edge+"/")); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, browser, `document.querySelectorAll('`+link+`').length > 0`, 20*time.Second)
	for _, format := range []string{"hls", "dash"} {
		t.Run(format, func(t *testing.T) {
			if err := chromedp.Run(browser, chromedp.Navigate(edge+"/?vod=vod/"+epoch+"&format="+format)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // a failure's report: the player, its requests
				if !t.Failed() {
					return
				}
				var diag string
				chromedp.Run(context.WithoutCancel(browser), chromedp.Evaluate(`JSON.stringify({vod: window.__vod,
					video: (() => { const v = document.getElementById('video'); return {t: v.currentTime, d: v.duration, ready: v.readyState, paused: v.paused,
						buffered: Array.from({length: v.buffered.length}, (_, i) => [v.buffered.start(i), v.buffered.end(i)])}; })(),
					res: performance.getEntriesByType('resource').map((e) => e.name.replace(/^.*?\/\/[^/]*/, '') + ' ' + e.responseStatus).slice(-40)})`, &diag))
				t.Logf("player: %s", diag)
			})
			pollWithin(t, browser, `window.__vod && (window.__vod.error || window.__vod.ended)`, time.Duration(seconds+40)*time.Second)
			var s struct {
				Error  *string
				Stalls int
				Time   float64
				Frames int
			}
			if err := chromedp.Run(browser, chromedp.Evaluate(`({Error: window.__vod.error, Stalls: window.__vod.stalls,
				Time: document.getElementById('video').currentTime,
				Frames: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames})`, &s)); err != nil {
				t.Fatal(err)
			}
			if s.Error != nil || s.Stalls != 0 || s.Time < seconds-1 || s.Frames < (seconds-1)*25 {
				t.Errorf("played the VOD to %.2f s, %d frames, %d stalls, error %v", s.Time, s.Frames, s.Stalls, s.Error)
			}
		})
	}
}

// dvrPlayersPage plays a stream's DVR window twice, with dash.js
// (dvr.mpd) and hls.js (dvr.m3u8), and counts each video's stalls after
// the test's seek.
const dvrPlayersPage = `<!doctype html><meta charset="utf-8">
<video id="dash" muted autoplay playsinline></video>
<video id="hls" muted autoplay playsinline></video>
<script src="%[1]s/static/vendor/dash.mediaplayer.min.js"></script>
<script src="%[1]s/static/vendor/hls.min.js"></script>
<script>
window.__errors = [];
window.__waits = {dash: 0, hls: 0};
window.__counting = false;
for (const id of ['dash', 'hls']) {
  document.getElementById(id).addEventListener('waiting', () => { if (window.__counting) window.__waits[id]++; });
}
const player = dashjs.MediaPlayer().create();
player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__errors.push('dash.js: ' + JSON.stringify(e.error || e)));
player.initialize(document.getElementById('dash'), '%[1]s/live/%[2]s/dvr.mpd', true);
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.__errors.push('hls.js: ' + d.type + ' ' + d.details); });
hls.loadSource('%[1]s/live/%[2]s/dvr.m3u8');
hls.attachMedia(document.getElementById('hls'));
</script>`

// TestBrowserDVR, as issue #24 asks: with a memory window of 30 s and a
// DVR window of two minutes, hls.js (the DVR playlist) and dash.js (the
// DVR MPD, its timeShiftBufferDepth the two minutes) are sent to "now -
// 90 s", beyond what the origin holds in memory (the window and another,
// plus a segment: 61 s), and play on from there without a stall for
// 25 s as the stream goes on live, the same distance behind its edge,
// on segments the archive serves.
//
// It is run in parallel with TestBrowserVOD, the package's only other
// parallel test (so they run together, after all the others): the 100 s
// this test waits for its DVR window to fill, with one ffmpeg publishing
// in real time, leave the cores to TestBrowserVOD, which is over before
// the players here are judged. That saves the suite about a minute.
func TestBrowserDVR(t *testing.T) {
	t.Parallel()
	st := newDirStore(t)
	a := startApp(t, Config{
		Origin:  origin.Config{Window: 30 * time.Second},
		Archive: &Archive{Store: st, DVR: 2 * time.Minute},
		PoP:     &pop.Config{},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := publishFor(t, ctx, a, "dvr", 200)
	waitFor(t, 150*time.Second, "100 s in the DVR window", func() bool {
		code, body := get(t, a.base+"/live/dvr/dvr.m3u8")
		if code != http.StatusOK {
			return false
		}
		v := strings.TrimSpace(lastLine(string(body)))
		code, pl := get(t, a.base+"/live/dvr/"+v)
		return code == http.StatusOK && strings.Count(string(pl), "#EXTINF") >= 100
	})

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, dvrPlayersPage, a.base, "dvr")
	}))
	defer site.Close()
	browser := newBrowser(t)
	if err := chromedp.Run(browser, chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	both := func(js string) string {
		return `['dash', 'hls'].every((id) => { const v = document.getElementById(id); return ` + js + `; })`
	}
	// Sent back once each plays: dash.js ignores a seek made while its
	// own first one (to its live start) is still on, and Chromium 156
	// leaves that one on until playback starts (it played from 0 with its
	// buffer at the live edge, or sat at the new time unbuffered).
	pollWithin(t, browser, both(`v.currentTime > 0 && v.seekable.length > 0 && v.readyState >= 3 && !v.paused && !v.seeking`), 30*time.Second)
	before := mustGet(t, a.base+"/metrics")
	var lags []float64
	err := chromedp.Run(browser, chromedp.Evaluate(`['dash', 'hls'].map((id) => {
		const v = document.getElementById(id), end = v.seekable.end(v.seekable.length - 1);
		v.currentTime = end - 90;
		return end - v.currentTime;
	})`, &lags))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent back %v s", lags)
	pollWithin(t, browser, both(`!v.seeking && v.readyState >= 3 && !v.paused`), 30*time.Second)
	lagJS := `['dash', 'hls'].map((id) => { const v = document.getElementById(id); return v.seekable.end(v.seekable.length - 1) - v.currentTime; })`
	var start, lagStart []float64
	if err := chromedp.Run(browser,
		chromedp.Evaluate(`window.__counting = true; [document.getElementById('dash').currentTime, document.getElementById('hls').currentTime]`, &start),
		chromedp.Evaluate(lagJS, &lagStart)); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"dash.js", "hls.js"} {
		if lagStart[i] < 75 {
			t.Errorf("%s plays %.1f s behind the live edge after the seek, want about 90", name, lagStart[i])
		}
	}
	// Playback over time is what is measured: 25 s, sampled each second.
	prev := start
	for range 25 {
		<-time.After(time.Second)
		var now []float64
		if err := chromedp.Run(browser, chromedp.Evaluate(`[document.getElementById('dash').currentTime, document.getElementById('hls').currentTime]`, &now)); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"dash.js", "hls.js"} {
			if adv := now[i] - prev[i]; adv < 0.5 || adv > 2 {
				t.Errorf("%s: currentTime went from %.2f to %.2f in a second", name, prev[i], now[i])
			}
		}
		prev = now
	}
	var waits map[string]int
	var errs []string
	var lagEnd []float64
	if err := chromedp.Run(browser,
		chromedp.Evaluate(`window.__waits`, &waits),
		chromedp.Evaluate(`window.__errors`, &errs),
		chromedp.Evaluate(lagJS, &lagEnd)); err != nil {
		t.Fatal(err)
	}
	if waits["dash"] != 0 || waits["hls"] != 0 || len(errs) != 0 {
		t.Errorf("after the seek: waiting events %v, errors %v", waits, errs)
	}
	for i, name := range []string{"dash.js", "hls.js"} {
		if d := lagEnd[i] - lagStart[i]; d < -3 || d > 3 {
			t.Errorf("%s: %.1f s behind live after the seek, %.1f s 25 s later: not continuous", name, lagStart[i], lagEnd[i])
		}
	}
	after := mustGet(t, a.base+"/metrics")
	reads := metricSum(after, `live_origin_archive_reads_total{result="hit"}`) - metricSum(before, `live_origin_archive_reads_total{result="hit"}`)
	if reads == 0 {
		t.Errorf("no segment was read from the archive: the players did not play beyond memory")
	}
	t.Logf("%v segments read from the archive for the players", reads)
	stillPublishing(t, done)
	cancel()
	<-done
}

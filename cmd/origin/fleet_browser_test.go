package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/internal/browsertest"
)

// playersPage plays a stream with dash.js (%[1]s: the MPD's URL) and
// hls.js (%[2]s: the multivariant playlist's), their scripts from %[3]s,
// both 3 s behind the live edge rather than in their low-latency modes
// (dash.js at the MPD's 1-s target, hls.js PART-HOLD-BACK behind the
// edge): there, their buffer of under a second does not hide the second
// a failover takes from dash.js, and on this test's machine (two
// origins, three PoP nodes, etcd, two encoders, a hundred simulated
// players and Chromium on two cores, under the race detector) both
// stalled now and then with no failover at all;
// and keeps in window.__players each one's errors (every error event of
// the player and of its video element) and stalls (when a video element
// waited for data once it had played, in Unix milliseconds).
const playersPage = `<!doctype html><meta charset="utf-8">
<video id="dash" muted autoplay playsinline></video>
<video id="hls" muted autoplay playsinline></video>
<script src="%[3]s/static/vendor/dash.mediaplayer.min.js"></script>
<script src="%[3]s/static/vendor/hls.min.js"></script>
<script>
window.__players = {};
for (const id of ['dash', 'hls']) {
  const v = document.getElementById(id);
  const p = window.__players[id] = {errors: [], stalls: [], played: false};
  p.stallEnds = [];
  v.addEventListener('playing', () => {
    p.played = true;
    if (p.stallEnds.length < p.stalls.length) p.stallEnds.push(Date.now());
  });
  v.addEventListener('waiting', () => {
    if (p.played && p.stallEnds.length == p.stalls.length) p.stalls.push(Date.now());
  });
  v.addEventListener('error', () => p.errors.push('video: ' + (v.error && v.error.message)));
}
const dash = dashjs.MediaPlayer().create();
dash.updateSettings({streaming: {applyServiceDescription: false, delay: {liveDelay: 3}}});
dash.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__players.dash.errors.push(JSON.stringify(e.error || e).slice(0, 300)));
dash.initialize(document.getElementById('dash'), '%[1]s', true);
const hls = new Hls({lowLatencyMode: false});
hls.on(Hls.Events.ERROR, (_, d) => window.__players.hls.errors.push((d.fatal ? 'fatal ' : '') + d.type + ' ' + d.details));
hls.loadSource('%[2]s');
hls.attachMedia(document.getElementById('hls'));
</script>`

// browserPlayers are dash.js and hls.js in Chromium, watching a stream
// through two nodes of a PoP, and the media requests they made.
type browserPlayers struct {
	ctx    context.Context
	stream string
	dash   string // the host dash.js asks
	hls    string // the host hls.js asks

	mu       sync.Mutex        // protects the fields below
	urls     map[string]string // by request ID
	requests []string          // segment and part URLs asked, in order
	failed   []string          // media requests that failed, and why
}

// watchInBrowser opens a page playing stream with dash.js through
// pops[1] and hls.js through pops[2], the players' scripts from pops[0].
func watchInBrowser(t *testing.T, pops []string, stream string) *browserPlayers {
	t.Helper()
	b := &browserPlayers{ctx: browsertest.Start(t), stream: stream, dash: pops[1], hls: pops[2], urls: map[string]string{}}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, playersPage, pops[1]+"/live/"+stream+"/manifest.mpd", pops[2]+"/live/"+stream+"/index.m3u8", pops[0])
	}))
	t.Cleanup(site.Close)
	media := regexp.MustCompile(`/live/` + regexp.QuoteMeta(stream) + `/`)
	chromedp.ListenTarget(b.ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if media.MatchString(e.Request.URL) {
				b.urls[string(e.RequestID)] = e.Request.URL
				if mediaFile.MatchString(e.Request.URL) {
					b.requests = append(b.requests, e.Request.URL)
				}
			}
		case *network.EventResponseReceived:
			if u, ok := b.urls[string(e.RequestID)]; ok && e.Response.Status >= 400 {
				b.failed = append(b.failed, fmt.Sprintf("%s: %d", u, e.Response.Status))
			}
		case *network.EventLoadingFailed:
			if u, ok := b.urls[string(e.RequestID)]; ok && !e.Canceled {
				b.failed = append(b.failed, fmt.Sprintf("%s: %s", u, e.ErrorText))
			}
		}
	})
	if err := chromedp.Run(b.ctx, network.Enable(), chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	return b
}

// mediaFile matches the URL of a segment or part: host, epoch,
// rendition, segment number.
var mediaFile = regexp.MustCompile(`^https?://([^/]+)/live/[^/]+/([^/]+)/([^/]+)/(\d+)(?:\.\d+)?\.m4s(?:\?.*)?$`)

// playerState is one player's state as the page keeps it.
type playerState struct {
	Errors []string `json:"errors"`
	Stalls []int64  `json:"stalls"` // when, in Unix milliseconds
	// StallEnds are when each stall ended (playing again), as far as
	// they did.
	StallEnds []int64 `json:"stallEnds"`
	Time      float64 `json:"time"` // the video's currentTime
}

// pageState is both players' states, and when they were read.
type pageState struct {
	at      time.Time
	players map[string]playerState
}

func (b *browserPlayers) state(t *testing.T) pageState {
	t.Helper()
	var ps map[string]playerState
	err := chromedp.Run(b.ctx, chromedp.Evaluate(`Object.fromEntries(Object.entries(window.__players).map(([id, p]) =>
		[id, {errors: p.errors, stalls: p.stalls, stallEnds: p.stallEnds, time: document.getElementById(id).currentTime}]))`, &ps))
	if err != nil {
		t.Fatalf("read the players' state: %v", err)
	}
	return pageState{time.Now(), ps}
}

// awaitPlaying waits until both players have played 2 s, or one has an
// error.
func (b *browserPlayers) awaitPlaying(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	err := chromedp.Run(ctx, chromedp.Poll(`window.__players && Object.entries(window.__players).every(([id, p]) =>
		p.errors.length > 0 || document.getElementById(id).currentTime > 2)`, nil))
	if err != nil {
		t.Fatalf("the players did not start within %v: %v", timeout, err)
	}
}

// check checks the players since before: no error, no stall since, playback
// advancing with the wall clock (at most 3 s behind it), every media
// request answered, one epoch, and every segment number between each
// rendition's first and last asked. Stalls are logged relative to
// event, when something happened to the fleet.
func (b *browserPlayers) check(t *testing.T, before pageState, event time.Time) {
	t.Helper()
	after := b.state(t)
	elapsed := after.at.Sub(before.at).Seconds()
	for id, p := range after.players {
		advanced := p.Time - before.players[id].Time
		var stalls, startup []string
		for i, ms := range p.Stalls {
			at := fmt.Sprintf("%+.1f s", time.UnixMilli(ms).Sub(event).Seconds())
			if i < len(p.StallEnds) {
				at += fmt.Sprintf(" for %d ms", p.StallEnds[i]-ms)
			} else {
				at += " (not over)"
			}
			if time.UnixMilli(ms).Before(before.at) {
				startup = append(startup, at) // while the player settled, before the period checked
			} else {
				stalls = append(stalls, at)
			}
		}
		t.Logf("%s: played %.1f s in %.1f s, stalls %v (before: %v), errors %q", id, advanced, elapsed, stalls, startup, p.Errors)
		if len(p.Errors) > 0 || len(stalls) > 0 {
			t.Errorf("%s: stalls %v, errors %q", id, stalls, p.Errors)
		}
		if advanced < elapsed-3 {
			t.Errorf("%s: played %.1f s in %.1f s", id, advanced, elapsed)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.failed) > 0 {
		t.Errorf("media requests failed: %q", b.failed)
	}
	type track struct{ host, rendition string }
	numbers := map[track][]uint64{}
	epochs := map[string]bool{}
	for _, u := range b.requests {
		m := mediaFile.FindStringSubmatch(u)
		n, err := strconv.ParseUint(m[4], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		k := track{m[1], m[3]}
		numbers[k] = append(numbers[k], n)
		epochs[m[2]] = true
	}
	if len(epochs) != 1 {
		t.Errorf("the players asked for the epochs %v, want one", epochs)
	}
	for _, host := range []string{b.dash, b.hls} {
		found := false
		for k, ns := range numbers {
			if "http://"+k.host != host {
				continue
			}
			found = true
			slices.Sort(ns)
			ns = slices.Compact(ns)
			t.Logf("%s %s: segments %d to %d", host, k.rendition, ns[0], ns[len(ns)-1])
			if len(ns) < 20 {
				t.Errorf("%s %s: %d segments asked", host, k.rendition, len(ns))
			}
			for i := 1; i < len(ns); i++ {
				if ns[i] != ns[i-1]+1 {
					t.Errorf("%s %s: segments %d to %d not asked", host, k.rendition, ns[i-1]+1, ns[i]-1)
				}
			}
		}
		if !found {
			t.Errorf("no segment asked from %s", host)
		}
	}
}

// checkDashboard opens the dashboard of the PoP node base in a tab of the
// players' browser and checks what it shows of the fleet: the origins
// the directory lists, and the origins serving stream in the order the
// PoP fetches from them, with their zones and roles (as want, a line
// each: "o1 z1 · primary").
func (b *browserPlayers) checkDashboard(t *testing.T, base, stream string, origins, want []string) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx) // a tab of its own
	defer cancel()
	ctx, cancelWait := context.WithTimeout(ctx, 20*time.Second)
	defer cancelWait()
	var got struct {
		Origins []string `json:"origins"`
		Fleet   []string `json:"fleet"`
	}
	read := fmt.Sprintf(`(() => {
		const row = [...document.querySelectorAll('#rows tr')].find(tr => tr.cells[0] && tr.cells[0].textContent === %q);
		return {
			origins: document.getElementById('fleet').hidden ? [] : [...document.querySelectorAll('#origin-rows tr')].map(tr => tr.cells[0].textContent),
			fleet: row ? [...row.cells[4].querySelectorAll('div > div')].map(d => d.textContent) : [],
		};
	})()`, stream)
	err := chromedp.Run(ctx, chromedp.Navigate(base+"/dashboard"),
		chromedp.Poll(fmt.Sprintf(`(() => { const s = %s; return s.origins.length === %d && s.fleet.length === %d; })()`, read, len(origins), len(want)), nil),
		chromedp.Evaluate(read, &got))
	if err != nil {
		chromedp.Run(b.ctx, chromedp.Evaluate(read, &got))
		t.Fatalf("dashboard: %v (it shows %+v)", err, got)
	}
	if !slices.Equal(got.Origins, origins) || !slices.Equal(got.Fleet, want) {
		t.Errorf("the dashboard shows the origins %q and the stream on %q; want %q and %q", got.Origins, got.Fleet, origins, want)
	}
}

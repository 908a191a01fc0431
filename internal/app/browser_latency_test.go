package app

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/pop"
)

// latencySampler records, every 250 ms for 10 s once the page has a
// latency figure, what the watch page says of it: its figure (the
// overlay's), the overlay's text, dash.js's own figure, and the latency
// the player aims at.
const latencySampler = `(() => {
	const samples = window.__samples = [];
	const t = setInterval(() => {
		const l = window.__live;
		const line = document.getElementById('overlay').textContent.split('\n').find((x) => x.startsWith('latency')) || '';
		samples.push({lat: l.latency, overlay: parseFloat(line.slice(7)), stalls: l.stalls,
			own: window.__dash ? window.__dash.getCurrentLiveLatency() : null,
			target: window.__dash ? window.__dash.getTargetLiveDelay() : window.__hls.targetLatency});
		if (samples.length === 40) clearInterval(t);
	}, 250);
})()`

type latencySample struct {
	Lat     *float64 `json:"lat"`
	Overlay float64  `json:"overlay"`
	Stalls  int      `json:"stalls"`
	Own     *float64 `json:"own"`
	Target  float64  `json:"target"`
}

// TestBrowserLatency plays the demo stream in the watch page through the
// app's PoP, with dash.js and hls.js, in low-latency mode (the default)
// and three segments behind the live edge (&ll=0), and samples the
// page's glass-to-player latency for 10 s. In low-latency mode, dash.js
// aims at the MPD's ServiceDescription target and plays below 3 s
// (median: a CPU-starved machine makes any player fall behind for a
// while), hls.js at LL-HLS's PART-HOLD-BACK; without, both aim three
// segments behind. The overlay shows the page's figure, which agrees
// with dash.js's own. The figures are logged.
func TestBrowserLatency(t *testing.T) {
	a := startApp(t, Config{Demo: true, PoP: &pop.Config{}})
	a.waitLive(t, DemoStream, 20*time.Second)
	ctx := newBrowser(t)
	for _, tc := range []struct {
		format string
		ll     bool
		// target checks the latency the player aims at, in seconds.
		target func(float64) bool
	}{
		{"dash", true, func(s float64) bool { return s == 1 }},  // the MPD's Latency@target, its timelines open
		{"dash", false, func(s float64) bool { return s == 3 }}, // suggestedPresentationDelay
		{"hls", true, func(s float64) bool { return s > 0 && s < 1 }},
		{"hls", false, func(s float64) bool { return s == 3 }},
	} {
		name := tc.format + map[bool]string{true: "/ll", false: "/ll=0"}[tc.ll]
		t.Run(name, func(t *testing.T) {
			url := fmt.Sprintf("%s/?stream=%s&format=%s", a.base, DemoStream, tc.format)
			if !tc.ll {
				url += "&ll=0"
			}
			if err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
				t.Fatal(err)
			}
			awaitPlaying(t, ctx, 30*time.Second)
			pollWithin(t, ctx, `window.__live.latency !== null`, 10*time.Second)
			var samples []latencySample
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err := chromedp.Run(sctx, chromedp.Evaluate(latencySampler, nil),
				chromedp.Poll(`window.__samples.length === 40 && window.__samples`, &samples))
			if err != nil {
				t.Fatalf("sampling the latency: %v", err)
			}
			var lats, diffs []float64
			for _, s := range samples {
				if s.Lat == nil {
					t.Fatalf("the page lost its latency figure: %+v", samples)
				}
				lats = append(lats, *s.Lat)
				// The overlay is redrawn every 500 ms, to 0.1 s.
				if d := math.Abs(s.Overlay - *s.Lat); !(d <= 0.15) {
					t.Errorf("overlay %.1f s, the page's figure %.2f s", s.Overlay, *s.Lat)
				}
				if s.Own != nil {
					diffs = append(diffs, math.Abs(*s.Own-*s.Lat))
				}
			}
			if target := samples[len(samples)-1].Target; !tc.target(target) {
				t.Errorf("the player aims at %.2f s", target)
			}
			t.Logf("%s: aiming at %.2f s; glass-to-player latency every 250 ms for 10 s: %v", name, samples[len(samples)-1].Target, lats)
			slices.Sort(lats)
			median := lats[len(lats)/2]
			t.Logf("%s: min %.2f, median %.2f, max %.2f s; %d stalls", name, lats[0], median, lats[len(lats)-1], samples[len(samples)-1].Stalls)
			// dash.js's figure is on its own sync with the same clock, and
			// taken on its own playhead updates: a seek puts them apart for
			// a moment.
			if len(diffs) > 0 {
				slices.Sort(diffs)
				t.Logf("dash.js's own figure differs from the page's by %.3f s (median), %.3f s at most", diffs[len(diffs)/2], diffs[len(diffs)-1])
				if diffs[len(diffs)/2] > 0.1 {
					t.Errorf("dash.js's own figure and the page's differ by %.2f s (median)", diffs[len(diffs)/2])
				}
			}
			if tc.format == "dash" && tc.ll && median >= 3 {
				t.Errorf("dash.js in low-latency mode played %.2f s behind (median), want below 3 s", median)
			}
		})
	}
}

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// counters is installed in every page before its own scripts run: it
// counts, after the first frame, the rebuffers (the video waiting for
// data, not for a seek) and hls.js's bufferStalledError (each of which
// raises hls.js's target latency by liveSyncOnStallIncrease), and keeps
// the samples the sampler takes.
const counters = `window.__bench = {rebuffers: 0, hlsStalls: 0, samples: []};
document.addEventListener('DOMContentLoaded', () => {
	const v = document.getElementById('video');
	v.addEventListener('waiting', () => {
		if (!v.seeking && window.__live && window.__live.firstFrameMs !== null) window.__bench.rebuffers++;
	});
});
(() => {
	const hook = setInterval(() => {
		if (window.__hls) {
			clearInterval(hook);
			window.__hls.on('hlsError', (e, d) => { if (d.details === 'bufferStalledError') window.__bench.hlsStalls++; });
		} else if (window.__dash) {
			clearInterval(hook);
		}
	}, 5);
})();`

// sampler takes a sample every 500 ms (the page redraws its overlay, and
// its latency figure, that often) until it has n.
const sampler = `((n) => {
	const b = window.__bench, v = document.getElementById('video');
	const t = setInterval(() => {
		const l = window.__live;
		let own = null, target = null;
		try {
			if (window.__dash) { own = window.__dash.getCurrentLiveLatency(); target = window.__dash.getTargetLiveDelay(); }
			else if (window.__hls) { own = window.__hls.latency; target = window.__hls.targetLatency; }
		} catch (e) { /* not initialised */ }
		b.samples.push({lat: l.latency, own: own, target: target, height: v.videoHeight, rate: v.playbackRate});
		if (b.samples.length >= n) clearInterval(t);
	}, 500);
})(%d)`

type sample struct {
	Lat    *float64 `json:"lat"`
	Own    *float64 `json:"own"`
	Target *float64 `json:"target"`
	Height int      `json:"height"`
	Rate   float64  `json:"rate"`
}

// latencyResult is what one mode measured.
type latencyResult struct {
	mode
	Kind         string   `json:"kind"` // "latency"
	Seconds      float64  `json:"seconds"`
	FirstFrameMS float64  `json:"first_frame_ms"`
	Latency      stats    `json:"latency"`    // the page's glass-to-player figure, s
	Own          stats    `json:"own"`        // the player's own figure, s
	Target       float64  `json:"target"`     // the player's target at the end, s
	Stalls       int      `json:"stalls"`     // the page's: 2 s or more without media
	Rebuffers    int      `json:"rebuffers"`  // waiting for data, after the first frame
	HLSStalls    int      `json:"hls_stalls"` // hls.js bufferStalledError, from the page load
	Heights      []int    `json:"heights"`    // the video heights played
	Samples      []sample `json:"samples"`
}

// measureLatency plays the stream in mode m in a new tab and samples the
// page's latency for d once the first frame is on screen and settle has
// passed.
func measureLatency(browser context.Context, base, stream string, m mode, d, settle time.Duration) (latencyResult, error) {
	res := latencyResult{mode: m, Kind: "latency", Seconds: d.Seconds()}
	tab, cancel := newTab(browser)
	defer cancel()
	err := chromedp.Run(tab,
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(counters).Do(ctx)
			return err
		}),
		chromedp.Navigate(pageURL(base, stream, m)))
	if err != nil {
		return res, err
	}
	if err := poll(tab, `window.__live.firstFrameMs !== null && window.__live.latency !== null`, 30*time.Second); err != nil {
		return res, fmt.Errorf("%w; the page: %s", err, pageState(tab))
	}
	if settle > 0 {
		select {
		case <-time.After(settle): // a stretch of playback, not a synchronisation
		case <-tab.Done():
			return res, tab.Err()
		}
	}
	n := int(d / (500 * time.Millisecond))
	var stallsBefore, rebuffersBefore int
	err = chromedp.Run(tab,
		chromedp.Evaluate(`window.__live.firstFrameMs`, &res.FirstFrameMS),
		chromedp.Evaluate(`window.__live.stalls`, &stallsBefore),
		chromedp.Evaluate(`window.__bench.rebuffers`, &rebuffersBefore),
		chromedp.Evaluate(fmt.Sprintf(sampler, n), nil))
	if err != nil {
		return res, err
	}
	if err := poll(tab, fmt.Sprintf(`window.__bench.samples.length >= %d`, n), d+30*time.Second); err != nil {
		return res, err
	}
	err = chromedp.Run(tab,
		chromedp.Evaluate(`window.__bench.samples`, &res.Samples),
		chromedp.Evaluate(`window.__live.stalls`, &res.Stalls),
		chromedp.Evaluate(`window.__bench.rebuffers`, &res.Rebuffers),
		chromedp.Evaluate(`window.__bench.hlsStalls`, &res.HLSStalls))
	if err != nil {
		return res, err
	}
	res.Stalls -= stallsBefore
	res.Rebuffers -= rebuffersBefore
	var lats, owns []float64
	for _, s := range res.Samples {
		if s.Lat != nil {
			lats = append(lats, *s.Lat)
		}
		if s.Own != nil {
			owns = append(owns, *s.Own)
		}
		if s.Target != nil {
			res.Target = *s.Target
		}
		if s.Height > 0 && !slices.Contains(res.Heights, s.Height) {
			res.Heights = append(res.Heights, s.Height)
		}
	}
	res.Latency, res.Own = statsOf(lats), statsOf(owns)
	return res, nil
}

func (r latencyResult) summary() string {
	var hs []string
	for _, h := range r.Heights {
		hs = append(hs, fmt.Sprintf("%dp", h))
	}
	own := "hls.js behind its live edge"
	if r.Format == "dash" {
		own = "dash.js getCurrentLiveLatency"
	}
	return fmt.Sprintf("latency %-8s median %.2f s (p10 %.2f, p90 %.2f, max %.2f) over %.0f s; target %.2f s; %s median %.2f s; stalls %d, rebuffers %d, hls.js stall errors %d; first frame %.0f ms; %s",
		r.Name, r.Latency.Median, r.Latency.P10, r.Latency.P90, r.Latency.Max, r.Seconds, r.Target, own, r.Own.Median,
		r.Stalls, r.Rebuffers, r.HLSStalls, r.FirstFrameMS, strings.Join(hs, ","))
}

// stats summarise samples.
type stats struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P10    float64 `json:"p10"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func statsOf(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[int(q*float64(len(s)-1)+0.5)] }
	return stats{N: len(s), Median: median(s), P10: at(0.1), P90: at(0.9), Min: s[0], Max: s[len(s)-1]}
}

// median of sorted s: the mean of the middle two of an even count.
func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// pageState describes the page's player, for a failure's report.
func pageState(tab context.Context) string {
	var state string
	err := chromedp.Run(tab, chromedp.Evaluate(`JSON.stringify({live: window.__live, t: document.getElementById('video').currentTime,
		buffered: Array.from({length: document.getElementById('video').buffered.length}, (_, i) => [document.getElementById('video').buffered.start(i), document.getElementById('video').buffered.end(i)]),
		requests: performance.getEntriesByType('resource').slice(-30).map((e) => e.name.replace(/^.*\/live\//, '') + ' ' + e.responseStatus + ' @' + Math.round(e.startTime) + '-' + Math.round(e.responseEnd))})`, &state))
	if err != nil {
		return err.Error()
	}
	return state
}

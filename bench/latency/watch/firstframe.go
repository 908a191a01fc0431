package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// milestones are, for a page load, when (ms since navigation start) the
// page's resources of each kind finished arriving, the first of each
// kind, taken from the Resource Timing entries: where the time to the
// first frame goes.
const milestones = `(() => {
	const first = {};
	const kinds = [
		['player', /\/static\/vendor\/(hls|dash)/],
		['time', /\/time$/],
		['manifest', /\/live\/[^/]+\/(index\.m3u8|manifest\.mpd)/],
		['playlist', /\/live\/[^/]+\/[^/]+\/[^/]+\/index\.m3u8/],
		['init', /\/init\.mp4/],
		['media', /\.m4s/],
	];
	for (const e of performance.getEntriesByType('resource')) {
		for (const [k, re] of kinds) {
			if (re.test(e.name) && !(k in first)) first[k] = Math.round(e.responseEnd);
		}
	}
	const nav = performance.getEntriesByType('navigation')[0];
	if (nav) first.page = Math.round(nav.domContentLoadedEventEnd);
	return first;
})()`

// milestoneOrder is the order the summary gives milestones in.
var milestoneOrder = []string{"page", "player", "time", "manifest", "playlist", "init", "media"}

// firstFrameResult is what the page loads of one format measured.
type firstFrameResult struct {
	Kind       string               `json:"kind"` // "first_frame"
	Format     string               `json:"format"`
	FirstFrame stats                `json:"first_frame_ms"`
	Loads      []float64            `json:"loads_ms"`
	Milestones map[string]stats     `json:"milestones_ms"`
	Raw        []map[string]float64 `json:"raw_milestones_ms"`
}

// measureFirstFrames loads the watch page of stream in format, in its
// default (low-latency) mode, loads times, each in a new tab of the same
// browser (its cache warm after the first), and reads the page's
// first-frame time each time: what its QoE beacon reports.
func measureFirstFrames(browser context.Context, base, stream, format string, loads int) (firstFrameResult, error) {
	res := firstFrameResult{Kind: "first_frame", Format: format, Milestones: map[string]stats{}}
	for range loads {
		ms, marks, err := firstFrame(browser, pageURL(base, stream, mode{Format: format, LL: true}))
		if err != nil {
			return res, err
		}
		res.Loads = append(res.Loads, ms)
		res.Raw = append(res.Raw, marks)
	}
	res.FirstFrame = statsOf(res.Loads)
	for _, k := range milestoneOrder {
		var xs []float64
		for _, m := range res.Raw {
			if v, ok := m[k]; ok {
				xs = append(xs, v)
			}
		}
		if len(xs) > 0 {
			res.Milestones[k] = statsOf(xs)
		}
	}
	return res, nil
}

func firstFrame(browser context.Context, url string) (float64, map[string]float64, error) {
	tab, cancel := newTab(browser)
	defer cancel()
	if err := chromedp.Run(tab, chromedp.Navigate(url)); err != nil {
		return 0, nil, err
	}
	if err := poll(tab, `window.__live.firstFrameMs !== null`, 30*time.Second); err != nil {
		return 0, nil, err
	}
	var ms float64
	var marks map[string]float64
	err := chromedp.Run(tab,
		chromedp.Evaluate(`window.__live.firstFrameMs`, &ms),
		chromedp.Evaluate(milestones, &marks))
	return ms, marks, err
}

func (r firstFrameResult) summary() string {
	var ms []string
	for _, k := range milestoneOrder {
		if s, ok := r.Milestones[k]; ok {
			ms = append(ms, fmt.Sprintf("%s %.0f", k, s.Median))
		}
	}
	strs := make([]string, len(r.Loads))
	for i, l := range r.Loads {
		strs[i] = fmt.Sprintf("%.0f", l)
	}
	return fmt.Sprintf("first frame %-5s median %.0f ms (min %.0f, max %.0f) over %d loads [%s]; median ms to the first of each: %s",
		r.Format, r.FirstFrame.Median, r.FirstFrame.Min, r.FirstFrame.Max, len(r.Loads), strings.Join(strs, " "), strings.Join(ms, ", "))
}

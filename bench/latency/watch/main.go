// Command watch plays a live stream in the watch page (web/static) with
// headless Chromium and measures what a viewer gets: glass-to-player
// latency (the page's figure: the server's clock less the wall-clock
// time of the frame on screen), stalls and rebuffers, for each of the
// page's players and modes; and the first-frame time of page loads (the
// QoE beacon's figure). bench/latency/run.sh runs it; see the README
// beside it.
//
//	watch -base http://127.0.0.1:8080 -stream bench -seconds 60 -loads 10
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golivestream/live/internal/browsertest"
)

func main() {
	base := flag.String("base", "http://127.0.0.1:8080", "the watch page's server (cmd/live's PoP)")
	stream := flag.String("stream", "bench", "the stream to watch")
	modes := flag.String("modes", "hls-ll,hls,dash-ll,dash", "players and modes to measure latency with, in order: hls-ll, hls, dash-ll, dash")
	seconds := flag.Int("seconds", 60, "seconds of latency samples per mode, from the first frame")
	loads := flag.Int("loads", 10, "page loads per format for the first-frame time (0: none)")
	settle := flag.Int("settle", 0, "seconds of playback before the samples begin")
	probe := flag.Int("probe", 20, "seconds of probing how long after ingest LL-HLS parts reach a player, per rendition, first (0: none)")
	out := flag.String("out", "", "file for the raw results, JSON lines (empty: none)")
	flag.Parse()
	if err := run(*base, *stream, strings.Split(*modes, ","), *probe, *seconds, *settle, *loads, *out); err != nil {
		fmt.Fprintln(os.Stderr, "watch:", err)
		os.Exit(1)
	}
}

func run(base, stream string, modes []string, probe, seconds, settle, loads int, outPath string) error {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	profile, err := os.MkdirTemp("", "bench-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browsertest.Options(path, profile)...)
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Run(browser); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}

	var out *json.Encoder
	if outPath != "" {
		f, err := os.Create(outPath)
		if err != nil {
			return err
		}
		defer f.Close()
		out = json.NewEncoder(f)
	}
	record := func(v any) {
		if out != nil {
			_ = out.Encode(v) // the summary on stdout is what counts
		}
	}

	if probe > 0 {
		ages, err := probeParts(context.Background(), base, stream, time.Duration(probe)*time.Second)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		for _, a := range ages {
			record(a)
			fmt.Println(a.summary())
		}
	}
	for _, m := range modes {
		md, err := parseMode(m)
		if err != nil {
			return err
		}
		res, err := measureLatency(browser, base, stream, md, time.Duration(seconds)*time.Second, time.Duration(settle)*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		record(res)
		fmt.Println(res.summary())
	}
	for _, format := range []string{"hls", "dash"} {
		if loads == 0 {
			break
		}
		res, err := measureFirstFrames(browser, base, stream, format, loads)
		if err != nil {
			return fmt.Errorf("first frame, %s: %w", format, err)
		}
		record(res)
		fmt.Println(res.summary())
	}
	return nil
}

// mode is a player of the watch page and whether it plays in low-latency
// mode.
type mode struct {
	Name   string `json:"mode"`
	Format string `json:"format"` // hls or dash
	LL     bool   `json:"ll"`
}

func parseMode(s string) (mode, error) {
	format, ll := strings.CutSuffix(s, "-ll")
	if format != "hls" && format != "dash" {
		return mode{}, fmt.Errorf("mode %q: want hls-ll, hls, dash-ll or dash", s)
	}
	return mode{Name: s, Format: format, LL: ll}, nil
}

// pageURL is the watch page of stream in mode m.
func pageURL(base, stream string, m mode) string {
	u := fmt.Sprintf("%s/?stream=%s&format=%s", base, stream, m.Format)
	if !m.LL {
		u += "&ll=0"
	}
	return u
}

// newTab opens a tab of browser; closing it (the cancel) ends the
// player's requests.
func newTab(browser context.Context) (context.Context, context.CancelFunc) {
	return chromedp.NewContext(browser)
}

// poll waits until js is true on the page, for at most d.
func poll(ctx context.Context, js string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := chromedp.Run(ctx, chromedp.Poll(js, nil, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("not within %v: %s", d, js)
	}
	return err
}

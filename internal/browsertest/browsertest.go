// Package browsertest starts Debian's headless Chromium for tests that
// watch streams with real players (hls.js, dash.js) through chromedp.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start starts headless Chromium for the test, allowed to autoplay, with
// networking limited to what the page asks for, and stops it when the
// test ends. Chromium is required when $CI is set; otherwise a test
// without it is skipped.
func Start(t testing.TB) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("chromium not installed (the README's test command installs it)")
	}
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits, failing its cleanup.
	profile, err := os.MkdirTemp("", "browser-test-")
	if err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), Options(path, profile)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Nothing signals the last helper process's exit: a few tries.
		for try := 0; os.RemoveAll(profile) != nil; try++ {
			if try == 20 {
				t.Logf("browser profile %s left behind", profile)
				return
			}
			<-time.After(100 * time.Millisecond)
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Options are the options of headless Chromium at path, with its profile
// in the directory profile, that Start uses: allowed to autoplay, muted,
// with networking limited to what the page asks for. Programs that watch
// streams the way the tests do (bench/latency) start it with them.
func Options(path, profile string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
}

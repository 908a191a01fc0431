// Package browsertest starts Debian's headless Chromium for tests that
// watch streams with real players (hls.js, dash.js) through chromedp.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start starts headless Chromium for the test, allowed to autoplay, with
// networking limited to what the page asks for, and stops it when the
// test ends. Chromium is required when $CI is set; otherwise a test
// without it is skipped.
//
// One test at a time, across the test binaries of every package that
// go test runs at once, has a browser (lock): these tests judge
// playback in real time (stalls, latency), and two of them with their
// players, servers and encoders on the same two cores starve each
// other's players.
func Start(t testing.TB) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("chromium not installed (the README's test command installs it)")
	}
	lock(t)
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

// lock waits until no other test on the machine has a browser from
// Start, and holds that until t ends: an exclusive flock(2) on a file in
// the temporary directory, let go by the kernel if the process dies.
func lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "golivestream-browsertest.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("browser lock: %v", err)
	}
	began := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("browser lock: %v", err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Logf("waited %.1f s for another test's browser to end", waited.Seconds())
	}
	t.Cleanup(func() { f.Close() }) // closing the file lets the lock go
}

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/proctest"
)

// TestMainDemoAndSIGTERM runs the real binary as a user would: it prints
// where to play, the demo stream plays with no other software, and SIGTERM
// ends it cleanly (exit 0, the demo stream ended first).
func TestMainDemoAndSIGTERM(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-archive", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr proctest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// "demo:      http://127.0.0.1:PORT/live/demo/index.m3u8", then the
	// watch page and the dashboard, the first things a newcomer clicks.
	urls := map[string]string{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		name, url, _ := strings.Cut(lines.Text(), ":")
		urls[name] = strings.TrimSpace(url)
		if name == "dashboard" {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	demoURL := urls["demo"]
	if demoURL == "" || !strings.HasSuffix(urls["watch"], "/?stream=demo") || !strings.HasSuffix(urls["dashboard"], "/dashboard") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("printed %q; want demo, watch and dashboard URLs; stderr:\n%s", urls, stderr.String())
	}
	for _, page := range []string{urls["watch"], urls["dashboard"]} {
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s, want an HTML page", page, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	// The demo stream becomes playable: its multivariant playlist is
	// held until the first segments exist, so a few tries cover the
	// publisher's start-up.
	// With ffmpeg, the demo (360p) gets a 240p ladder rendition too.
	variants := 1
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		variants = 2
	}
	var mv playlist.Multivariant
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(demoURL)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && mv.Unmarshal(body) == nil && len(mv.Variants) >= variants {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo stream not playable at %s: %v; stderr:\n%s", demoURL, err, stderr.String())
		}
		// Another process is starting the stream; nothing to wait on but HTTP.
		time.Sleep(200 * time.Millisecond)
	}
	if len(mv.Variants) != variants {
		t.Errorf("demo multivariant has %d variants, want %d", len(mv.Variants), variants)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"shutting down", `msg="stream ended" part=origin stream=demo`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

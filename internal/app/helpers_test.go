package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/internal/mpdtest"
	"github.com/golivestream/live/internal/streaminfo"
)

// testApp is an App running on loopback ports for one test.
type testApp struct {
	*App
	base   string // http://127.0.0.1:port, the players' address
	origin string // the origin's address (base without a PoP)
	rtmp   string // rtmp://127.0.0.1:port/live/
}

// startApp runs an App on 127.0.0.1:0 until the test ends, logging into
// the test's output.
func startApp(t testing.TB, cfg Config) *testApp {
	t.Helper()
	cfg.RTMPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = logtest.Logger(t, slog.LevelInfo) // first, so that its cleanup runs after the app stopped
	app, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	return &testApp{
		App:    app,
		base:   app.PlayBase(),
		origin: "http://" + app.OriginAddr().String(),
		rtmp:   "rtmp://" + app.RTMPAddr().String() + "/live/",
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, body
}

// mustGet fetches url and fails the test unless it answers 200.
func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, code, body)
	}
	return body
}

// streams returns what /api/streams says.
func (a *testApp) streams(t *testing.T) map[string]streaminfo.Stream {
	t.Helper()
	var resp struct{ Streams []streaminfo.Stream }
	if err := json.Unmarshal(mustGet(t, a.base+"/api/streams"), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]streaminfo.Stream{}
	for _, s := range resp.Streams {
		out[s.Name] = s
	}
	return out
}

// waitFor asks cond every 50 ms until it holds, failing the test after
// timeout. It is for conditions seen only through another process or the
// HTTP API, where there is no event to wait on.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// stream returns what /api/streams/{name} says, as a watch page waiting
// for stream name asks (the PoP's list leaves private streams out), and
// whether the stream is there. On a 404 it looks in the list too: the
// origin's own port has the list (with every stream) and not the route.
func (a *testApp) stream(t *testing.T, name string) (streaminfo.Stream, bool) {
	t.Helper()
	var s streaminfo.Stream
	code, body := get(t, a.base+"/api/streams/"+url.PathEscape(name))
	switch {
	case code == http.StatusNotFound:
		s, ok := a.streams(t)[name]
		return s, ok
	case code != http.StatusOK:
		t.Fatalf("/api/streams/%s: status %d: %s", name, code, body)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

// waitLive waits until stream name is live with a segment in every rendition.
func (a *testApp) waitLive(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "stream "+name+" to go live", func() bool {
		s, ok := a.stream(t, name)
		if !ok || !s.Live || len(s.Renditions) == 0 {
			return false
		}
		for _, r := range s.Renditions {
			if r.LastNumber == nil {
				return false
			}
		}
		return true
	})
}

// waitEnded waits until stream name has ended (its playlists carry ENDLIST).
func (a *testApp) waitEnded(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "stream "+name+" to end", func() bool {
		s, ok := a.stream(t, name)
		return ok && !s.Live
	})
}

// requireTool returns the path of tool (ffmpeg, ffprobe, chromium). Missing tools skip
// the test on a developer machine, and fail it in CI, where the test
// command installs them.
func requireTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", tool, err)
	}
	t.Skipf("%s not installed (the README's test command installs it)", tool)
	return ""
}

// runCmd runs a command with a deadline, returning its combined output.
func runCmd(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return string(out), fmt.Errorf("%s timed out after %v", name, timeout)
	}
	return string(out), err
}

// validateMPD checks an MPD: it parses, and the MPEG-DASH schema
// validates it when the schema is at hand (internal/mpdtest).
func validateMPD(t *testing.T, body []byte) {
	t.Helper()
	mpdtest.Validate(t, body)
}

package main

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
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/proctest"
	"github.com/golivestream/live/loadtest"
	"github.com/golivestream/live/publisher"
)

// interval is the report interval of the test's PoPs and balancer.
const interval = 300 * time.Millisecond

// TestEndToEnd runs cmd/origin, cmd/gslb and two cmd/pop processes, and
// publishes the demo clip to the origin:
//
//   - the load generator's players, entering at the balancer's /play/, are
//     spread over both PoPs (pop-a, the nearer, takes 5 viewers);
//   - SIGKILL to the PoP new viewers are sent to moves them to the other
//     within one report interval: the kernel closes the dead process's
//     report session and the balancer drops it at once;
//   - SIGTERM to the last PoP makes the balancer send new viewers to the
//     overflow CDN at once, while the PoP serves its viewer until the
//     viewer leaves, then exits 0.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	gslbBin, popBin, originBin := proctest.Build(t, dir, "."), proctest.Build(t, dir, "../pop"), proctest.Build(t, dir, "../origin")

	// The origin, and the demo clip published to it.
	// The origin logs JSON (checked below), to show -log-format works.
	origin := proctest.Start(t, originBin, 2, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-log-format", "json")
	rtmpURL := strings.Replace(strings.TrimSpace(strings.TrimPrefix(origin.Stdout[0], "publish:")), "{stream}", "demo", 1)
	originURL := "http://" + hostOf(t, strings.Fields(origin.Stdout[1])[1])
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan error, 1)
	go func() { pubDone <- publisher.Publish(pubCtx, publisher.Config{URL: rtmpURL, Clip: clip}) }()
	t.Cleanup(func() {
		stopPub()
		if err := <-pubDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("publish: %v", err)
		}
	})

	origin.Await(t, `"msg":"stream started"`)
	for _, line := range strings.SplitAfter(origin.Stderr.String(), "\n") {
		var rec struct{ Time, Level, Msg string }
		if !strings.HasSuffix(line, "\n") {
			continue // not finished yet
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" || rec.Level == "" || rec.Msg == "" {
			t.Errorf("origin log line is not a JSON record with time, level and msg: %q (%v)", line, err)
		}
	}

	// The balancer: pop-a is the nearer PoP for everyone.
	mapFile := filepath.Join(dir, "map.json")
	if err := os.WriteFile(mapFile, []byte(`{"default": {"pop-a": 10, "pop-b": 20}, "networks": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const overflow = "http://cdn.example"
	lb := proctest.Start(t, gslbBin, 1, "-http", "127.0.0.1:0", "-map", mapFile, "-overflow", overflow,
		"-interval", interval.String(), "-horizon", interval.String())
	gslbURL := strings.Fields(lb.Stdout[0])[3]
	gslbURL = strings.TrimSuffix(gslbURL, ",")

	popArgs := func(name string, more ...string) []string {
		return append([]string{"-http", "127.0.0.1:0", "-origin", originURL, "-gslb", gslbURL, "-name", name,
			"-report-interval", interval.String(), "-viewer-window", "2s", "-drain-timeout", "30s"}, more...)
	}
	popA := proctest.Start(t, popBin, 1, popArgs("pop-a", "-capacity-viewers", "5")...)
	popB := proctest.Start(t, popBin, 1, popArgs("pop-b")...)
	// "pop: serving on http://ADDR from …"
	hostA, hostB := hostOf(t, strings.Fields(popA.Stdout[0])[3]), hostOf(t, strings.Fields(popB.Stdout[0])[3])
	lb.Await(t, `msg="pop joined" pop=pop-a`)
	lb.Await(t, `msg="pop joined" pop=pop-b`)

	// The load generator's players are spread: pop-a, of capacity 5 (each
	// player sends its own User-Agent, so the PoP counts them apart), is
	// full with the first five; the load generator's start-up probe,
	// which goes through the balancer too, may take one of the places.
	g, err := loadtest.New(loadtest.Config{
		Targets:  []string{gslbURL + "/play/"},
		Streams:  []string{"demo"},
		Schedule: loadtest.Ramp(12, 2*time.Second),
		Duration: 4 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("players by PoP: %v (pop-a %s, pop-b %s); errors %v", rep.Hosts, hostA, hostB, rep.Errors)
	if a := rep.Hosts[hostA]; a < 4 || a > 5 || rep.Hosts[hostA]+rep.Hosts[hostB] != rep.Players {
		t.Errorf("players by host %v: want 4 or 5 on pop-a (%s), the rest on pop-b, nothing else", rep.Hosts, hostA)
	}
	if rep.NeverStarted != 0 || rep.ErrorCount != 0 {
		t.Errorf("%d players never started, %d errors (%v)", rep.NeverStarted, rep.ErrorCount, rep.Errors)
	}

	// Once the players are gone from pop-a (after its viewer window), new
	// viewers go there again; nothing signals it but the balancer's route.
	for deadline := time.Now().Add(20 * time.Second); route(t, gslbURL) != "pop-a"; {
		if time.Now().After(deadline) {
			t.Fatal("new viewers never went back to pop-a")
		}
		time.Sleep(50 * time.Millisecond) // pop-a's viewers expire by time
	}
	if host := play(t, gslbURL, "viewer-1"); host != hostA {
		t.Fatalf("a new viewer went to %s, want pop-a %s", host, hostA)
	}

	// SIGKILL pop-a: no drain, the balancer learns it from the session.
	killed := time.Now()
	if err := popA.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	lb.Await(t, `msg="pop removed" pop=pop-a`)
	if took := time.Since(killed); took > interval {
		t.Errorf("pop-a dropped %v after SIGKILL, more than one report interval (%v)", took, interval)
	}
	if host := play(t, gslbURL, "viewer-2"); host != hostB {
		t.Fatalf("after pop-a died a new viewer went to %s, want pop-b %s", host, hostB)
	}
	t.Logf("pop-a killed: new viewers go to pop-b after %v", time.Since(killed))

	// SIGTERM pop-b with a viewer on it.
	stopViewer, answers := watch(t, gslbURL, hostB)
	if err := popB.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lb.Await(t, `msg="pop draining" pop=pop-b`)
	draining := time.Now()
	resp, err := noFollow.Get(gslbURL + "/play/demo/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != overflow+"/live/demo/index.m3u8" {
		t.Errorf("while pop-b drains a new viewer goes to %q, want the overflow", loc)
	}
	for served := 0; served < 3; {
		a := <-answers
		if a.err != nil {
			t.Fatalf("the viewer failed while pop-b drained: %v", a.err)
		}
		if a.at.After(draining) {
			served++
		}
	}
	stopViewer()
	if err := popB.Wait(); err != nil {
		t.Fatalf("pop-b exit: %v\n%s", err, popB.Stderr)
	}
	if !strings.Contains(popB.Stderr.String(), "drained: no viewers left") {
		t.Errorf("pop-b did not wait for its viewer:\n%s", popB.Stderr)
	}
	lb.Await(t, `msg="pop removed" pop=pop-b`)
}

// hostOf returns the host:port of a URL.
func hostOf(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// route asks the balancer where a new viewer would go, without sending one.
func route(t *testing.T, gslbURL string) string {
	t.Helper()
	resp, err := http.Get(gslbURL + "/api/route")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		PoP string `json:"pop"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.PoP
}

// play enters at the balancer as a player called ua and plays once: the
// multivariant playlist, the first variant's media playlist, its init
// segment and its last segment, each resolved against the URL it was
// listed at. It returns the host that served them.
func play(t *testing.T, gslbURL, ua string) string {
	t.Helper()
	host, err := playOnce(gslbURL+"/play/demo/index.m3u8", ua)
	if err != nil {
		t.Fatal(err)
	}
	return host
}

func playOnce(entry, ua string) (string, error) {
	body, final, err := get(entry, ua)
	if err != nil {
		return "", err
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(body); err != nil {
		return "", fmt.Errorf("multivariant playlist: %w", err)
	}
	mediaURL := final.ResolveReference(&url.URL{Path: mv.Variants[0].URI})
	body, mfinal, err := get(mediaURL.String(), ua)
	if err != nil {
		return "", err
	}
	var m playlist.Media
	if err := m.Unmarshal(body); err != nil {
		return "", fmt.Errorf("media playlist: %w", err)
	}
	if m.Map == nil || len(m.Segments) == 0 {
		return "", errors.New("media playlist without init or segments")
	}
	for _, uri := range []string{m.Map.URI, m.Segments[len(m.Segments)-1].URI} {
		if _, _, err := get(mfinal.ResolveReference(&url.URL{Path: uri}).String(), ua); err != nil {
			return "", err
		}
	}
	if final.Host != mfinal.Host {
		return "", fmt.Errorf("the media playlist came from %s, the multivariant from %s", mfinal.Host, final.Host)
	}
	return final.Host, nil
}

// get fetches u as ua, following redirects, and returns the body and the
// final URL.
func get(u, ua string) ([]byte, *url.URL, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, resp.Request.URL, err
}

// answer is one of a watching viewer's plays.
type answer struct {
	at  time.Time
	err error
}

// watch runs a viewer that enters at the balancer and plays from the PoP
// it lands on (which must be want) every 300 ms, telling each play, until
// stop is called.
func watch(t *testing.T, gslbURL, want string) (stop func(), answers <-chan answer) {
	t.Helper()
	_, final, err := get(gslbURL+"/play/demo/index.m3u8", "watcher")
	if err != nil {
		t.Fatal(err)
	}
	if final.Host != want {
		t.Fatalf("the watcher went to %s, want %s", final.Host, want)
	}
	ch := make(chan answer, 1000)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			_, err := playOnce(final.String(), "watcher")
			ch <- answer{time.Now(), err} // never full within the test
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop, ch
}

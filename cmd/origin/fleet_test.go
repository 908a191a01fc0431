package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/directory/etcdtest"
	"github.com/golivestream/live/internal/proctest"
	"github.com/golivestream/live/loadtest"
)

// origins prints "publish:   rtmp://HOST:PORT/live/{stream}" and
// "play:      http://HOST:PORT/live/..." first.
var (
	publishLine = regexp.MustCompile(`publish:\s+(rtmp://[^/ ]+/live)/`)
	playLine    = regexp.MustCompile(`play:\s+(http://[^/ ]+)/live/`)
)

// fleetStream is the stream the fleet tests publish.
const fleetStream = "fleet"

// fleetConfig shapes a fleet under test.
type fleetConfig struct {
	// members is the number of etcd members.
	members int
	// seconds is how long ffmpeg publishes.
	seconds int
}

// fleet is a fleet under test, as the README runs one: etcd, two origins
// (processes of cmd/origin, -etcd) fed one ffmpeg through its tee muxer
// (dual hot ingest), and three PoP nodes (processes of cmd/pop, -etcd)
// sharing one key space.
type fleet struct {
	etcd    *etcdtest.Cluster
	origins []*originProc
	pops    []*proctest.Proc
	popURLs []string
	// view follows the directory, as the PoPs do.
	view *directory.View
	// primary and backup serve the stream, as the directory said once
	// both did.
	primary, backup directory.Origin
	pubOut          *proctest.SyncBuffer
}

// originProc is an origin of the fleet.
type originProc struct {
	p              *proctest.Proc
	id, rtmp, http string
}

// startFleet starts a fleet, publishes fleetStream to both origins, and
// returns once the directory lists it on both.
func startFleet(t *testing.T, cfg fleetConfig) *fleet {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ffmpeg is required in CI: %v", err)
		}
		t.Skip("ffmpeg not installed")
	}
	f := &fleet{etcd: etcdtest.Start(t, etcdtest.Config{Members: cfg.members})}
	ep := strings.Join(f.etcd.Endpoints(), ",")
	dir := t.TempDir()
	originBin := proctest.Build(t, dir, ".")
	popBin := proctest.Build(t, dir, "../pop")

	for i := range 2 {
		id := fmt.Sprintf("o%d", i)
		p := proctest.Start(t, originBin, 2, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-transcode=false",
			"-etcd", ep, "-id", id, "-zone", fmt.Sprintf("z%d", i))
		out := strings.Join(p.Stdout, "")
		pm, hm := publishLine.FindStringSubmatch(out), playLine.FindStringSubmatch(out)
		if pm == nil || hm == nil {
			t.Fatalf("origin %d printed %q", i, out)
		}
		f.origins = append(f.origins, &originProc{p, id, pm[1], hm[1]})
	}
	for range 3 {
		f.popURLs = append(f.popURLs, "http://127.0.0.1:"+freePort(t))
	}
	// The PoPs' -origin, for streams the directory does not know, is a
	// port nobody listens on: every fetch goes where the directory says.
	nowhere := "http://127.0.0.1:" + freePort(t)
	for i, u := range f.popURLs {
		f.pops = append(f.pops, proctest.Start(t, popBin, 1, "-http", strings.TrimPrefix(u, "http://"),
			"-origin", nowhere, "-etcd", ep,
			"-peers", strings.Join(f.popURLs, ","), "-self", f.popURLs[i], "-hedge-after", "1s"))
	}

	// ffmpeg pushes one encoding to both origins.
	ctx, cancel := context.WithCancel(context.Background())
	tee := fmt.Sprintf("[f=flv:onfail=ignore]%s/%s|[f=flv:onfail=ignore]%s/%[2]s", f.origins[0].rtmp, fleetStream, f.origins[1].rtmp)
	src := fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", cfg.seconds)
	tone := fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", cfg.seconds)
	pub := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone,
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-map", "0:v", "-map", "1:a", "-flags", "+global_header", "-f", "tee", tee)
	f.pubOut = &proctest.SyncBuffer{}
	pub.Stdout, pub.Stderr = f.pubOut, f.pubOut
	if err := pub.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); pub.Wait() })

	// The directory knows the stream on both origins.
	if f.view, err = directory.NewView(directory.ViewConfig{Client: f.etcd.Client(), ProgressInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	vdone := make(chan error, 1)
	go func() { vdone <- f.view.Run(vctx) }()
	t.Cleanup(func() { vcancel(); <-vdone })
	timeout := time.After(30 * time.Second)
	for {
		changed := f.view.Changed()
		if p, b, ok := f.view.Lookup(fleetStream); ok && p.ID != "" && b.ID != "" {
			f.primary, f.backup = p, b
			break
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the directory does not list the stream on both origins; ffmpeg: %s", f.pubOut)
		}
	}
	t.Logf("primary %s (%s), backup %s (%s)", f.primary.ID, f.primary.PublicURL, f.backup.ID, f.backup.PublicURL)
	return f
}

// origin returns the origin named id.
func (f *fleet) origin(t *testing.T, id string) *originProc {
	t.Helper()
	for _, o := range f.origins {
		if o.id == id {
			return o
		}
	}
	t.Fatalf("no origin %s", id)
	return nil
}

// failovers sums the PoP nodes' live_pop_failovers_total.
func (f *fleet) failovers(t *testing.T) float64 {
	t.Helper()
	n := 0.0
	for _, base := range f.popURLs {
		n += metricSum(t, base+"/metrics", "live_pop_failovers_total")
	}
	return n
}

// TestFleet: two origins registered in a real etcd, fed one ffmpeg
// through its tee muxer (dual hot ingest), make one epoch and
// byte-identical files; three PoP nodes follow the directory; the
// primary origin is killed (SIGKILL) while 100 simulated players (half
// DASH), and hls.js and dash.js in Chromium, watch through the PoP: they
// go on from the backup without a stall, an error or a segment number
// skipped, and the PoPs count the failover.
func TestFleet(t *testing.T) {
	f := startFleet(t, fleetConfig{members: 1, seconds: 90})
	// The browsers warm up while the origins' files are compared.
	players := watchInBrowser(t, f.popURLs, fleetStream)

	// Identical files: the init segments and 20 segments of each rendition.
	compareOrigins(t, f.primary.PublicURL, f.backup.PublicURL, fleetStream, 20)

	players.awaitPlaying(t, 30*time.Second)
	before := players.state(t)
	g, err := loadtest.New(loadtest.Config{
		Targets: f.popURLs, Streams: []string{fleetStream}, Schedule: loadtest.Steady(100),
		Duration: 30 * time.Second, DASHShare: 0.5,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The primary dies a third of the way.
	victim := f.origin(t, f.primary.ID)
	killed := time.AfterFunc(10*time.Second, func() { victim.p.Cmd.Process.Signal(syscall.SIGKILL) })
	defer killed.Stop()
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("players: %d, stalls %d, errors %v, segment p99 %.0f ms", rep.Players, rep.Stalls, rep.Errors, rep.Classes["segment"].Latency.P99)
	if rep.Stalls != 0 || rep.ErrorCount != 0 || rep.NeverStarted != 0 {
		t.Errorf("through the failover: %d stalls, %d errors (%v), %d never started", rep.Stalls, rep.ErrorCount, rep.Errors, rep.NeverStarted)
	}
	players.check(t, before)
	if f.failovers(t) == 0 {
		t.Error("no PoP counted a failover")
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()[strings.LastIndexByte(l.Addr().String(), ':')+1:]
}

// compareOrigins checks that two origins serve stream name with the same
// init segments and the same first n segments of every rendition.
func compareOrigins(t *testing.T, a, b, name string, n int) {
	t.Helper()
	get := func(url string) []byte {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", url, resp.StatusCode, err)
		}
		return body
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(get(a + "/live/" + name + "/index.m3u8")); err != nil {
		t.Fatal(err)
	}
	var media []string
	for _, v := range mv.Variants {
		media = append(media, v.URI)
	}
	for _, r := range mv.Renditions {
		if r.URI != nil {
			media = append(media, *r.URI)
		}
	}
	for _, uri := range media {
		dir := "/live/" + name + "/" + uri[:strings.LastIndexByte(uri, '/')+1]
		var pl playlist.Media
		deadline := time.Now().Add(40 * time.Second)
		for {
			if err := pl.Unmarshal(get(a + dir + "index.m3u8")); err != nil {
				t.Fatal(err)
			}
			if len(pl.Segments) >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second) // the stream grows in real time: nothing to await but its segments
		}
		files := []string{"init.mp4"}
		for _, s := range pl.Segments[:min(n, len(pl.Segments))] {
			files = append(files, s.URI)
		}
		if len(files) < n+1 {
			t.Errorf("%s: %d segments", dir, len(files)-1)
		}
		for _, f := range files {
			if x, y := get(a+dir+f), get(b+dir+f); string(x) != string(y) {
				t.Errorf("%s%s: %d and %d bytes, not identical", dir, f, len(x), len(y))
			}
		}
	}
}

// metricSum sums the values of a metric on a /metrics page.
func metricSum(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

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

// TestFleet: two origins registered in a real etcd, fed one ffmpeg
// through its tee muxer (dual hot ingest), make one epoch and
// byte-identical files; three PoP nodes follow the directory; the
// primary origin is killed (SIGKILL) while 100 players (half DASH) watch
// through the PoP: they go on from the backup without a stall or an
// error, and the PoPs count the failover.
func TestFleet(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ffmpeg is required in CI: %v", err)
		}
		t.Skip("ffmpeg not installed")
	}
	etcd := etcdtest.Start(t, etcdtest.Config{})
	ep := strings.Join(etcd.Endpoints(), ",")
	dir := t.TempDir()
	originBin := proctest.Build(t, dir, ".")
	popBin := proctest.Build(t, dir, "../pop")

	type proc struct {
		p          *proctest.Proc
		rtmp, http string
	}
	var origins []proc
	for i := range 2 {
		p := proctest.Start(t, originBin, 2, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-transcode=false",
			"-etcd", ep, "-id", fmt.Sprintf("o%d", i), "-zone", fmt.Sprintf("z%d", i))
		out := strings.Join(p.Stdout, "")
		pm, hm := publishLine.FindStringSubmatch(out), playLine.FindStringSubmatch(out)
		if pm == nil || hm == nil {
			t.Fatalf("origin %d printed %q", i, out)
		}
		origins = append(origins, proc{p, pm[1], hm[1]})
	}
	var pops []string
	ports := []string{freePort(t), freePort(t), freePort(t)}
	var peers []string
	for _, port := range ports {
		peers = append(peers, "http://127.0.0.1:"+port)
	}
	for i, port := range ports {
		proctest.Start(t, popBin, 1, "-http", "127.0.0.1:"+port, "-origin", origins[0].http, "-etcd", ep,
			"-peers", strings.Join(peers, ","), "-self", peers[i], "-hedge-after", "1s")
		pops = append(pops, peers[i])
	}

	// ffmpeg pushes one encoding to both origins.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tee := fmt.Sprintf("[f=flv:onfail=ignore]%s/fleet|[f=flv:onfail=ignore]%s/fleet", origins[0].rtmp, origins[1].rtmp)
	pub := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=70", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=70",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-map", "0:v", "-map", "1:a", "-flags", "+global_header", "-f", "tee", tee)
	pubOut := &proctest.SyncBuffer{}
	pub.Stdout, pub.Stderr = pubOut, pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); pub.Wait() }()

	// The directory knows the stream on both origins.
	view, err := directory.NewView(directory.ViewConfig{Client: etcd.Client()})
	if err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	vdone := make(chan error, 1)
	go func() { vdone <- view.Run(vctx) }()
	defer func() { vcancel(); <-vdone }()
	var primary, backup directory.Origin
	for {
		p, b, ok := view.Lookup("fleet")
		if ok && p.ID != "" && b.ID != "" {
			primary, backup = p, b
			break
		}
		select {
		case <-view.Changed():
		case <-time.After(30 * time.Second):
			t.Fatalf("the directory does not list the stream on both origins; ffmpeg: %s", pubOut)
		}
	}
	t.Logf("primary %s (%s), backup %s (%s)", primary.ID, primary.PublicURL, backup.ID, backup.PublicURL)

	// Identical files: the init segments and 20 segments of each rendition.
	compareOrigins(t, primary.PublicURL, backup.PublicURL, "fleet", 20)

	// 100 players through the PoP; the primary dies a third of the way.
	g, err := loadtest.New(loadtest.Config{
		Targets: pops, Streams: []string{"fleet"}, Schedule: loadtest.Steady(100),
		Duration: 30 * time.Second, DASHShare: 0.5,
	})
	if err != nil {
		t.Fatal(err)
	}
	killed := time.AfterFunc(10*time.Second, func() {
		for _, o := range origins {
			if o.http == primary.PublicURL {
				o.p.Cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	})
	defer killed.Stop()
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("players: %d, stalls %d, errors %v, segment p99 %.0f ms", rep.Players, rep.Stalls, rep.Errors, rep.Classes["segment"].Latency.P99)
	if rep.Stalls != 0 || rep.ErrorCount != 0 || rep.NeverStarted != 0 {
		t.Errorf("through the failover: %d stalls, %d errors (%v), %d never started", rep.Stalls, rep.ErrorCount, rep.Errors, rep.NeverStarted)
	}
	failovers := 0.0
	for _, base := range pops {
		failovers += metricSum(t, base+"/metrics", "live_pop_failovers_total")
	}
	if failovers == 0 {
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

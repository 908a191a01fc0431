package main

import (
	"context"
	"encoding/json"
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
	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/loadtest"
)

// origins print "publish:   rtmp://HOST:PORT/live/{stream}" and
// "play:      http://HOST:PORT/live/..." first.
var (
	publishLine = regexp.MustCompile(`publish:\s+rtmp://([^/ ]+)/live/`)
	playLine    = regexp.MustCompile(`play:\s+http://([^/ ]+)/live/`)
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
	etcd      *etcdtest.Cluster
	endpoints string // etcd's, for -etcd
	originBin string
	ffmpeg    string
	seconds   int // how long publishers publish
	origins   []*originProc
	pops      []*proctest.Proc
	popURLs   []string
	// view follows the directory, as the PoPs do.
	view *directory.View
	// primary and backup serve the stream, as the directory said once
	// both did.
	primary, backup directory.Origin
	pubOut          *proctest.SyncBuffer
}

// originProc is an origin of the fleet.
type originProc struct {
	p        *proctest.Proc
	id, zone string
	// rtmp and http are its listeners' addresses: host:port ("" port:
	// any) before it starts, then as it says.
	rtmp, http string
}

// rtmpURL and httpURL are an origin's base URLs.
func (o *originProc) rtmpURL() string { return "rtmp://" + o.rtmp + "/live" }
func (o *originProc) httpURL() string { return "http://" + o.http }

// start starts (or starts again) the origin o, on the addresses it
// listened on before.
func (f *fleet) start(t *testing.T, o *originProc) {
	t.Helper()
	o.p = proctest.Start(t, f.originBin, 2, "-rtmp", o.rtmp, "-http", o.http, "-transcode=false",
		"-etcd", f.endpoints, "-id", o.id, "-zone", o.zone)
	out := strings.Join(o.p.Stdout, "")
	pm, hm := publishLine.FindStringSubmatch(out), playLine.FindStringSubmatch(out)
	if pm == nil || hm == nil {
		t.Fatalf("origin %s printed %q", o.id, out)
	}
	o.rtmp, o.http = pm[1], hm[1]
}

// publish starts an ffmpeg publishing fleetStream to the origins, one
// encoding pushed to each by its tee muxer, until the test ends, and
// returns its output.
func (f *fleet) publish(t *testing.T, to ...*originProc) *proctest.SyncBuffer {
	t.Helper()
	var outs []string
	for _, o := range to {
		outs = append(outs, "[f=flv:onfail=ignore]"+o.rtmpURL()+"/"+fleetStream)
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", f.seconds)
	tone := fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", f.seconds)
	pub := exec.CommandContext(ctx, f.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone,
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-map", "0:v", "-map", "1:a", "-flags", "+global_header", "-f", "tee", strings.Join(outs, "|"))
	out := &proctest.SyncBuffer{}
	pub.Stdout, pub.Stderr = out, out
	if err := pub.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); pub.Wait() })
	return out
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
	f := &fleet{etcd: etcdtest.Start(t, etcdtest.Config{Members: cfg.members}), ffmpeg: ffmpeg, seconds: cfg.seconds}
	f.endpoints = strings.Join(f.etcd.Endpoints(), ",")
	ep := f.endpoints
	dir := t.TempDir()
	f.originBin = proctest.Build(t, dir, ".")
	popBin := proctest.Build(t, dir, "../pop")

	for i := range 2 {
		o := &originProc{id: fmt.Sprintf("o%d", i), zone: fmt.Sprintf("z%d", i), rtmp: "127.0.0.1:0", http: "127.0.0.1:0"}
		f.start(t, o)
		f.origins = append(f.origins, o)
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
	f.pubOut = f.publish(t, f.origins...)

	t.Cleanup(func() { // what happened, when a check failed
		if !t.Failed() {
			return
		}
		for i, p := range f.pops {
			t.Logf("PoP node %d logged:\n%s", i, tail(p.Stderr.String(), 60))
		}
		for _, o := range f.origins {
			t.Logf("origin %s logged:\n%s", o.id, tail(o.p.Stderr.String(), 30))
		}
	})

	// The directory knows the stream on both origins.
	if f.view, err = directory.NewView(directory.ViewConfig{Client: f.etcd.Client(), ProgressInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	vctx, vcancel := context.WithCancel(context.Background())
	vdone := make(chan error, 1)
	go func() { vdone <- f.view.Run(vctx) }()
	t.Cleanup(func() { vcancel(); <-vdone })
	r := f.awaitRoute(t, func(r directory.Route) bool { return r.Backup.ID != "" })
	f.primary, f.backup = r.Primary, r.Backup
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

// play runs n simulated players (half DASH) through the PoP for d,
// running during meanwhile in the test's goroutine, and returns their
// report.
func (f *fleet) play(t *testing.T, n int, d time.Duration, during func()) *loadtest.Report {
	t.Helper()
	g, err := loadtest.New(loadtest.Config{
		Targets: f.popURLs, Streams: []string{fleetStream}, Schedule: loadtest.Steady(n),
		Duration: d, DASHShare: 0.5,
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep *loadtest.Report
		err error
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		rep, err := g.Run(ctx)
		done <- result{rep, err}
	}()
	waited := false
	t.Cleanup(func() { // when during fails
		cancel()
		if !waited {
			<-done
		}
	})
	if during != nil {
		during()
	}
	r := <-done
	waited = true
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("%d players: stalls %d, errors %v, segment p99 %.0f ms", r.rep.Players, r.rep.Stalls, r.rep.Errors, r.rep.Classes["segment"].Latency.P99)
	if r.rep.Stalls != 0 || r.rep.ErrorCount != 0 || r.rep.NeverStarted != 0 {
		t.Errorf("%d stalls, %d errors (%v), %d never started", r.rep.Stalls, r.rep.ErrorCount, r.rep.Errors, r.rep.NeverStarted)
	}
	return r.rep
}

// TestFleet: two origins registered in a real etcd, fed one ffmpeg
// through its tee muxer (dual hot ingest), make one epoch and
// byte-identical files; three PoP nodes follow the directory.
//
// The primary origin is killed (SIGKILL) while 100 simulated players
// (half DASH), and hls.js and dash.js in Chromium, watch through the PoP:
// they go on from the backup without a stall, an error or a segment
// number skipped, and the PoPs count the failover. The killed origin is
// started again and its publisher comes back: too late to make the
// stream's files (its numbering starts at 0), it serves an epoch of its
// own on standby, which the players never see. When the other origin
// dies too, the stream goes on from it, with its epoch, as after a lone
// origin's restart: new players play it.
func TestFleet(t *testing.T) {
	f := startFleet(t, fleetConfig{members: 1, seconds: 120})
	// The browsers warm up while the origins' files are compared.
	players := watchInBrowser(t, f.popURLs, fleetStream)

	// Identical files: the init segments and 20 segments of each rendition.
	compareOrigins(t, f.primary.PublicURL, f.backup.PublicURL, fleetStream, 20)

	victim, survivor := f.origin(t, f.primary.ID), f.origin(t, f.backup.ID)
	epoch := f.route(t).Epoch
	// Where the stream lives: in each origin's /api/streams, and on the
	// PoP's dashboard, from the directory.
	for _, o := range []*originProc{victim, survivor} {
		role := map[bool]string{true: "primary", false: "backup"}[o == victim]
		if got := apiStreams(t, o.httpURL()); len(got) != 1 || len(got[0].Fleet) != 1 ||
			got[0].Fleet[0] != (streaminfo.Placement{Origin: o.id, Zone: o.zone, Role: role, Epoch: epoch}) {
			t.Errorf("%s's /api/streams: %+v", o.id, got)
		}
	}
	players.checkDashboard(t, f.popURLs[0], fleetStream, []string{"o0", "o1"},
		[]string{victim.id + " " + victim.zone + " · primary", survivor.id + " " + survivor.zone + " · backup"})

	players.awaitPlaying(t, 30*time.Second)
	before := players.state(t)
	var killed time.Time
	f.play(t, 100, 30*time.Second, func() {
		<-time.After(10 * time.Second) // the primary dies a third of the way
		victim.p.Cmd.Process.Signal(syscall.SIGKILL)
		killed = time.Now()
		<-time.After(5 * time.Second)
		f.start(t, victim)
		f.publish(t, victim)
		victim.p.Await(t, "serving an epoch of its own on standby")
		t.Logf("%s back on standby %.1f s after it was killed", victim.id, time.Since(killed).Seconds())
	})
	players.check(t, before, killed)
	if f.failovers(t) == 0 {
		t.Error("no PoP counted a failover")
	}
	if r := f.route(t); r.Epoch != epoch || r.Primary.ID != survivor.id || r.Backup.ID != "" {
		t.Errorf("route %s on %s and %q, want %s on %s alone", r.Epoch, r.Primary.ID, r.Backup.ID, epoch, survivor.id)
	}

	survivor.p.Cmd.Process.Signal(syscall.SIGKILL)
	r := f.awaitRoute(t, func(r directory.Route) bool { return r.Primary.ID == victim.id })
	if r.Epoch == epoch || r.Backup.ID != "" {
		t.Fatalf("route %s on %s and %q, want a new epoch on %s alone", r.Epoch, r.Primary.ID, r.Backup.ID, victim.id)
	}
	// The PoP's multivariant playlist, cached for a second, names it soon.
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, body := httpGet(t, f.popURLs[0]+"/live/"+fleetStream+"/index.m3u8"); strings.Contains(body, r.Epoch+"/") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the PoP's playlist does not name epoch %s", r.Epoch)
		}
		time.Sleep(200 * time.Millisecond) // nothing to await but the cache's expiry
	}
	f.play(t, 20, 10*time.Second, nil)
}

// route returns the stream's route as the directory has it now.
func (f *fleet) route(t *testing.T) directory.Route {
	t.Helper()
	r, ok := f.view.Snapshot().Route(fleetStream)
	if !ok {
		t.Fatal("the directory does not list the stream")
	}
	return r
}

// awaitRoute waits until cond holds of the stream's route, and returns
// it.
func (f *fleet) awaitRoute(t *testing.T, cond func(directory.Route) bool) directory.Route {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		changed := f.view.Changed()
		r, ok := f.view.Snapshot().Route(fleetStream)
		if ok && cond(r) {
			return r
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("route %+v (%v)", r, ok)
		}
	}
}

// apiStreams returns the streams of base's /api/streams.
func apiStreams(t *testing.T, base string) []streaminfo.Stream {
	t.Helper()
	_, body := httpGet(t, base+"/api/streams")
	var list struct{ Streams []streaminfo.Stream }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("%s/api/streams: %v", base, err)
	}
	return list.Streams
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// httpGet gets url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
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
// init segments and the same first n segments of every rendition, dated
// alike: the same PROGRAM-DATE-TIME for each segment in their media
// playlists, the same availabilityStartTime in their MPDs.
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
		var other playlist.Media
		if err := other.Unmarshal(get(b + dir + "index.m3u8")); err != nil {
			t.Fatal(err)
		}
		dates := map[string]time.Time{}
		for _, s := range pl.Segments {
			if s.DateTime != nil {
				dates[s.URI] = *s.DateTime
			}
		}
		compared := 0
		for _, s := range other.Segments {
			if d, ok := dates[s.URI]; ok && s.DateTime != nil {
				compared++
				if !d.Equal(*s.DateTime) {
					t.Errorf("%s%s: PROGRAM-DATE-TIME %v and %v", dir, s.URI, d, *s.DateTime)
				}
			}
		}
		if compared == 0 {
			t.Errorf("%s: no dated segment in both media playlists", dir)
		}
	}
	ast := regexp.MustCompile(`availabilityStartTime="([^"]+)"`)
	x, y := ast.FindSubmatch(get(a+"/live/"+name+"/manifest.mpd")), ast.FindSubmatch(get(b+"/live/"+name+"/manifest.mpd"))
	if x == nil || y == nil || string(x[1]) != string(y[1]) {
		t.Errorf("MPD availabilityStartTime %q and %q", x, y)
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

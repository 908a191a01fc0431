package loadtest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	benchPlayers  = flag.Int("loadgen.players", 1000, "BenchmarkLoadGenCPU: players per run")
	benchDuration = flag.Duration("loadgen.duration", 10*time.Second, "BenchmarkLoadGenCPU: how long players run")
)

// benchServerEnv makes TestLoadGenServer serve: BenchmarkLoadGenCPU runs
// this test binary again with it as its server process, so that the CPU
// this process uses is the load generator's alone.
const benchServerEnv = "LOADTEST_BENCH_SERVER"

// Realistic sizes: about 1.2 Mb/s of video and 96 kb/s of audio, in 1-s
// segments, as our packager cuts them.
const (
	benchVideoBytes = 150_000
	benchAudioBytes = 12_000
)

// liveServer is a stand-in PoP for one live HLS stream "s", video and
// audio in 1-s segments: segment n is listed n-5 s after start, and the
// media playlists list the last 6. Safe for concurrent use.
type liveServer struct {
	start        time.Time
	video, audio []byte
}

func newLiveServer() *liveServer {
	return &liveServer{start: time.Now(), video: make([]byte, benchVideoBytes), audio: make([]byte, benchAudioBytes)}
}

func (s *liveServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/live/s/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	track, file, _ := strings.Cut(rest, "/")
	body := s.video
	if track == "a" {
		body = s.audio
	}
	switch {
	case rest == "index.m3u8":
		io.WriteString(w, "#EXTM3U\n#EXT-X-VERSION:7\n"+
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",DEFAULT=YES,URI=\"a/index.m3u8\"\n"+
			"#EXT-X-STREAM-INF:BANDWIDTH=1400000,AUDIO=\"a\"\nv/index.m3u8\n")
		return
	case track != "v" && track != "a":
		http.NotFound(w, r)
		return
	case file == "index.m3u8":
		last := 5 + int(time.Since(s.start)/time.Second)
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init.mp4\"\n", last-5)
		for n := last - 5; n <= last; n++ {
			fmt.Fprintf(&b, "#EXTINF:1.000,\n%d.m4s\n", n)
		}
		io.WriteString(w, b.String())
		return
	case file == "init.mp4":
		body = body[:1000]
	case strings.HasSuffix(file, ".m4s"):
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// TestLoadGenServer is BenchmarkLoadGenCPU's server process: it serves a
// liveServer on 127.0.0.1, prints its URL, and stops when its standard
// input closes.
func TestLoadGenServer(t *testing.T) {
	if os.Getenv(benchServerEnv) == "" {
		t.Skip("the server process of BenchmarkLoadGenCPU")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: newLiveServer()}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Printf("loadgen-server http://%s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Error(err)
	}
}

// startBenchServer runs TestLoadGenServer in a process of its own and
// returns its URL; the process ends with the benchmark.
func startBenchServer(b *testing.B) string {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestLoadGenServer$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "loadgen-server "); ok {
			go io.Copy(io.Discard, stdout) // until the process ends
			return u
		}
	}
	b.Fatalf("the server process said no URL: %v", sc.Err())
	return ""
}

// sampler is a Progress writer that keeps the most goroutines, and the
// most memory in heap objects and goroutine stacks, seen at a progress
// line.
type sampler struct{ goroutines, memory atomic.Uint64 }

func (s *sampler) Write(p []byte) (int, error) {
	storeMax(&s.goroutines, uint64(runtime.NumGoroutine()))
	storeMax(&s.memory, memoryNow())
	return len(p), nil
}

func storeMax(a *atomic.Uint64, n uint64) {
	for {
		m := a.Load()
		if n <= m || a.CompareAndSwap(m, n) {
			return
		}
	}
}

// memoryNow returns the bytes in heap objects and goroutine stacks.
func memoryNow() uint64 {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64() + m[1].Value.Uint64()
}

// netHTTPTransport is the transport players used before #20, for the
// comparison.
func netHTTPTransport(players int) *http.Transport {
	conns := players + 100
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// BenchmarkLoadGenCPU runs -loadgen.players HLS players (video and audio)
// for -loadgen.duration against a live stream served by another process
// on 127.0.0.1, with net/http's client (the path before #20) and with the
// load generator's own, and reports the load generator's CPU time per
// request (the report's generator_cpu_s over its requests), allocations
// per request, and goroutines and memory (heap objects and stacks, at
// their highest) per player. One iteration is one run:
//
//	go test -run X -bench LoadGenCPU -count 2 ./loadtest
func BenchmarkLoadGenCPU(b *testing.B) {
	base := startBenchServer(b)
	for _, c := range []struct {
		name      string
		transport func() http.RoundTripper
	}{
		{"client=nethttp", func() http.RoundTripper { return netHTTPTransport(*benchPlayers) }},
		{"client=own", func() http.RoundTripper { return nil }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var cpu, reqs, errs, mallocs, goroutines, memory float64
			runs := 0
			for b.Loop() {
				var samples sampler
				g, err := New(Config{
					Targets:   []string{base},
					Streams:   []string{"s"},
					Schedule:  Steady(*benchPlayers),
					Duration:  *benchDuration,
					Transport: c.transport(),
					Progress:  &samples,
				})
				if err != nil {
					b.Fatal(err)
				}
				var m0, m1 runtime.MemStats
				runtime.GC()
				g0, mem0 := runtime.NumGoroutine(), memoryNow()
				runtime.ReadMemStats(&m0)
				rep, err := g.Run(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				runtime.ReadMemStats(&m1)
				n := rep.Classes["playlist"].Requests + rep.Classes["init"].Requests + rep.Classes["segment"].Requests
				cpu += rep.GeneratorCPU
				reqs += float64(n)
				errs += float64(rep.ErrorCount)
				mallocs += float64(m1.Mallocs - m0.Mallocs)
				goroutines += (float64(samples.goroutines.Load()) - float64(g0)) / float64(*benchPlayers)
				memory += (float64(samples.memory.Load()) - float64(mem0)) / float64(*benchPlayers) / 1024
				runs++
				if rep.ErrorCount > 0 || rep.NeverStarted > 0 {
					b.Logf("%d errors %v, %d players never started", rep.ErrorCount, rep.Errors, rep.NeverStarted)
				}
			}
			b.ReportMetric(cpu/reqs*1e6, "cpu-µs/req")
			b.ReportMetric(mallocs/reqs, "allocs/req")
			b.ReportMetric(goroutines/float64(runs), "goroutines/player")
			b.ReportMetric(memory/float64(runs), "KiB/player")
			b.ReportMetric(reqs/float64(runs), "req/run")
			b.ReportMetric(errs/float64(runs), "errors/run")
		})
	}
}

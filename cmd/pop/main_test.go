package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golivestream/live/gslb"
	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/internal/proctest"
)

// TestThreeProcessesOneFetch runs three real pop processes sharing one key
// space in front of a slow origin: 1000 concurrent requests for one
// uncached segment, spread over the three, reach the origin once and all
// get the whole body.
func TestThreeProcessesOneFetch(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	body := make([]byte, 250<<10)
	rand.Read(body)
	release := make(chan struct{})
	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".m4s") {
			return // health checks, stream list
		}
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(body[len(body)/2:])
	}))
	defer origin.Close()

	// Three free loopback ports.
	var peers []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, "http://"+ln.Addr().String())
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, self := range peers {
		cmd := exec.CommandContext(ctx, bin, "-http", strings.TrimPrefix(self, "http://"),
			"-origin", origin.URL, "-peers", strings.Join(peers, ","), "-self", self)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}
	for _, p := range peers {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := client.Get(p + "/healthz")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start: %v", p, err)
			}
			time.Sleep(50 * time.Millisecond) // another process is starting; nothing to wait on
		}
	}

	const n = 1000
	const path = "/live/s/e1/v0/3.m4s"
	headers, results := make(chan struct{}, n), make(chan error, n)
	for i := range n {
		go func() {
			resp, err := client.Get(peers[i%3] + path)
			headers <- struct{}{}
			if err != nil {
				results <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err == nil && !bytes.Equal(got, body) {
				err = io.ErrUnexpectedEOF
			}
			results <- err
		}()
	}
	for range n {
		<-headers // every request is now reading the shared fill
	}
	close(release)
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if got := fetches.Load(); got != 1 {
		t.Errorf("the origin saw %d fetches from three pop processes, want 1", got)
	}
}

// startProcess starts bin and returns it with the address it prints
// ("pop: serving on http://ADDR …").
func startProcess(t *testing.T, bin string, args ...string) (*proctest.Proc, string) {
	t.Helper()
	p := proctest.Start(t, bin, 1, args...)
	f := strings.Fields(p.Stdout[0])
	if len(f) < 4 || f[1] != "serving" {
		t.Fatalf("unexpected first line %q", p.Stdout[0])
	}
	_, addr, _ := strings.Cut(f[3], "://")
	return p, addr
}

// TestDrain runs a pop process reporting to a balancer, with a viewer
// playing from it, and sends it SIGTERM: the balancer stops sending
// viewers there at once, the pop goes on serving its viewer, and exits
// (0) when the viewer stops, or at -drain-timeout while it plays on.
func TestDrain(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		io.WriteString(w, "#EXTM3U\n")
	}))
	defer origin.Close()
	tests := []struct {
		name         string
		drainTimeout time.Duration
		viewerStops  bool
		logs         string
	}{
		{"the viewer leaves", time.Minute, true, "drained: no viewers left"},
		{"the deadline passes", 1500 * time.Millisecond, false, "drain timeout: viewers still here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := logtest.New(1000, "pop", "reason")
			b, err := gslb.New(gslb.Config{
				Map:    mustMap(t, `{"default": {"edge-1": 1}, "networks": []}`),
				Logger: slog.New(logs), Interval: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := gslb.NewServer(gslb.ServerConfig{Balancer: b})
			if err != nil {
				t.Fatal(err)
			}
			lb := httptest.NewServer(srv)
			defer lb.Close()

			proc, addr := startProcess(t, bin, "-http", "127.0.0.1:0", "-origin", origin.URL,
				"-gslb", lb.URL, "-name", "edge-1", "-report-interval", "100ms",
				"-viewer-window", "400ms", "-drain-timeout", tt.drainTimeout.String())
			logs.Await(t, "pop joined pop=edge-1")
			if rt := b.Peek(netip.MustParseAddr("192.0.2.1")); rt.URL != "http://"+addr {
				t.Fatalf("route %+v, want the pop at %s", rt, addr)
			}

			// The viewer asks for the playlist every 50 ms until stopped,
			// and tells each answer.
			type answer struct {
				at  time.Time
				err error
			}
			answers := make(chan answer, 1000)
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					resp, err := http.Get("http://" + addr + "/live/s/index.m3u8")
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != 200 {
							err = errors.New(resp.Status)
						}
					}
					answers <- answer{time.Now(), err} // never full within the test
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			if a := <-answers; a.err != nil {
				t.Fatal(a.err)
			}

			stderr := proc.Stderr
			if err := proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			logs.Await(t, "pop draining pop=edge-1")
			draining := time.Now()
			if rt := b.Assign(netip.MustParseAddr("192.0.2.1")); rt.PoP != "" {
				t.Errorf("a draining pop was sent a viewer: %+v", rt)
			}
			// The pop serves its viewer on.
			for served := 0; served < 4; {
				a := <-answers
				if a.err != nil {
					t.Fatalf("the viewer failed while the pop drained: %v; stderr:\n%s", a.err, stderr)
				}
				if a.at.After(draining) {
					served++
				}
			}
			if tt.viewerStops {
				close(stop)
				<-stopped
			}
			waited := time.Now()
			if err := proc.Wait(); err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, stderr)
			}
			if !strings.Contains(stderr.String(), tt.logs) {
				t.Errorf("stderr lacks %q:\n%s", tt.logs, stderr)
			}
			if took := time.Since(waited); took > 10*time.Second {
				t.Errorf("exit took %v", took)
			}
			logs.Await(t, "pop removed pop=edge-1 reason=report session ended: closed by the PoP")
			if !tt.viewerStops {
				close(stop)
				<-stopped
			}
		})
	}
}

func mustMap(t *testing.T, s string) *gslb.Map {
	t.Helper()
	m, err := gslb.ParseMap([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPublicURL: the URL the balancer sends viewers to, and the PoP's
// name made of it, from the flags and the listening address.
func TestPublicURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, self, addr, scheme string
		want, wantName           string
	}{
		{"https://edge.example/", "http://10.0.0.1:8081", "127.0.0.1:8081", "http", "https://edge.example", "edge.example"},
		{"", "http://10.0.0.1:8081/", "127.0.0.1:8081", "http", "http://10.0.0.1:8081", "10.0.0.1-8081"},
		{"", "", "127.0.0.1:8443", "https", "https://127.0.0.1:8443", "127.0.0.1-8443"},
		{"", "", "[::]:8081", "http", "http://" + net.JoinHostPort(host, "8081"), ""},
	} {
		got, err := publicURL(tc.flag, tc.self, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr)), tc.scheme)
		if err != nil || got != tc.want {
			t.Errorf("publicURL(%q, %q, %s, %s) = %q, %v; want %q", tc.flag, tc.self, tc.addr, tc.scheme, got, err, tc.want)
		}
		if u, err := url.Parse(got); tc.wantName != "" && (err != nil || popName(u.Host) != tc.wantName) {
			t.Errorf("popName(%q) = %q, want %q", u.Host, popName(u.Host), tc.wantName)
		}
	}
}

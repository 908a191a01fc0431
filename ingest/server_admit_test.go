package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/publisher"
)

// natListener makes every connection it accepts look as if it came from
// addr (with its own port): clients on loopback then stand for clients
// behind one NAT address elsewhere.
type natListener struct {
	net.Listener
	addr net.IP
}

func (l natListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	port := c.RemoteAddr().(*net.TCPAddr).Port
	return natConn{c, &net.TCPAddr{IP: l.addr, Port: port}}, nil
}

type natConn struct {
	net.Conn
	remote net.Addr
}

func (c natConn) RemoteAddr() net.Addr { return c.remote }

// countLog is a slog.Handler that counts records by message.
type countLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (*countLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *countLog) WithAttrs([]slog.Attr) slog.Handler     { return l }
func (l *countLog) WithGroup(string) slog.Handler          { return l }

func (l *countLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = make(map[string]int)
	}
	l.n[r.Message]++
	return nil
}

func (l *countLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// openIdle opens n TCP connections to addr that send nothing, and returns
// a channel that gets a value each time the server closes one.
func openIdle(t *testing.T, addr string, n int) <-chan struct{} {
	t.Helper()
	closed := make(chan struct{}, n)
	for range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		go func() {
			var b [1]byte
			nc.Read(b[:]) // returns once the server closes, or the test ends
			closed <- struct{}{}
		}()
	}
	return closed
}

// awaitN receives n values from ch, failing t after 20 s.
func awaitN(t *testing.T, ch <-chan struct{}, n int, what string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%d of %d %s", i, n, what)
		}
	}
}

// TestIdleFlood replays issue #18 C: idle TCP connections from one
// address, as many as the server takes and more, then a publisher from
// that same address (the worst case: behind the attacker's NAT, or on
// the server's host) gets in at once. Each new connection closes a
// quiet one that has not published, so a flood holds at most
// MaxPendingPerAddr places (MaxPending from loopback, which is not
// bounded per address), and is logged in a line or two, not one per
// connection.
func TestIdleFlood(t *testing.T) {
	const idle, maxConns = 100, 40
	for _, tc := range []struct {
		name string
		nat  net.IP // where the connections seem to come from; nil: loopback
		held int    // the places the flood keeps
	}{
		{"from one address", net.IPv4(203, 0, 113, 7), 8},
		{"from this host", nil, maxConns / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if tc.nat != nil {
				ln = natListener{ln, tc.nat}
			}
			logs := &countLog{}
			reg := prometheus.NewRegistry()
			// Connections that do not publish time out only after a
			// minute: here a flood has to be dealt with otherwise.
			h, _ := startGated(t, Config{Listener: ln, MaxConns: maxConns, PublishTimeout: time.Minute, ReadTimeout: time.Minute,
				Logger: slog.New(logs), Registerer: reg})
			h.release()
			closed := openIdle(t, addr, idle)
			awaitN(t, closed, idle-tc.held, "idle connections closed")

			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := publisher.Publish(ctx, publisher.Config{URL: "rtmp://" + addr + "/live/cam", Clip: clipLoadDemo(t), Loops: 1, Speed: -1}); err != nil {
				t.Fatalf("publishing during the flood: %v", err)
			}
			if name := await(t, h.published); name != "cam" {
				t.Errorf("published %q", name)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("publishing took %v", d)
			}
			awaitN(t, closed, 1, "idle connections closed for the publisher")
			if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "evicted"); n != idle-float64(tc.held)+1 {
				t.Errorf("refused{reason=evicted} = %v, want %d", n, idle-tc.held+1)
			}
			if n := metricValue(t, reg, "live_ingest_pending_connections"); n != float64(tc.held-1) {
				t.Errorf("live_ingest_pending_connections = %v, want %d", n, tc.held-1)
			}
			if n := logs.count("rtmp connection closed before publishing, to make room for a new one"); n == 0 || n > 2 {
				t.Errorf("%d log lines for %d connections closed, want 1 or 2", n, idle-tc.held+1)
			}
		})
	}
}

// TestFullOfPublishers: publishers keep their places through a flood of
// idle connections; a new connection is refused only when every place is
// a publisher's.
func TestFullOfPublishers(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, base := startGated(t, Config{MaxConns: 4, MaxPending: 2, PublishTimeout: time.Minute, ReadTimeout: time.Minute, Registerer: reg})
	h.release()
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/")
	clip := clipLoadDemo(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before wg.Wait, also when t fails
	// Publishers that go on until cancel, at 4 times real time: each is
	// live once gortmplib's reader has read 2 s of its media.
	live := func(names ...string) {
		for _, name := range names {
			wg.Go(func() {
				if err := publisher.Publish(ctx, publisher.Config{URL: base + name, Clip: clip, Speed: 4}); !errors.Is(err, context.Canceled) {
					t.Errorf("publisher %s: %v", name, err)
				}
			})
		}
		for range names {
			await(t, h.published)
		}
	}
	live("a", "b")
	awaitN(t, openIdle(t, addr, 20), 18, "idle connections closed")
	live("c", "d") // in the places of idle ones
	awaitN(t, openIdle(t, addr, 1), 1, "connections closed, with all places taken by publishers")
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "too_many"); n != 1 {
		t.Errorf("refused{reason=too_many} = %v, want 1", n)
	}
	if n := metricValue(t, reg, "live_ingest_publishers"); n != 4 {
		t.Errorf("live_ingest_publishers = %v, want 4", n)
	}
	cancel()
}

// TestPublishTimeout: a connection that does not publish within
// PublishTimeout is closed, counted and logged, whether it sends nothing
// or stops after the handshake.
func TestPublishTimeout(t *testing.T) {
	events := logtest.New(64)
	reg := prometheus.NewRegistry()
	_, base := startGated(t, Config{PublishTimeout: 300 * time.Millisecond, ReadTimeout: time.Minute,
		Logger: slog.New(events), Registerer: reg})
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/")
	shook := dialRTMP(t, base) // the deadline: 20 s
	awaitN(t, openIdle(t, addr, 1), 1, "silent connections closed")
	awaitClosed(t, shook)
	events.Await(t, "no publish within the publish timeout")
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "timeout"); n != 2 {
		t.Errorf("refused{reason=timeout} = %v, want 2", n)
	}
}

// TestRefusalLog: a flood of refusals of one kind is one line as it
// starts and one line summing it up; another kind has its own.
func TestRefusalLog(t *testing.T) {
	logs := &countLog{}
	l := &refusalLog{log: slog.New(logs)}
	for range 100 {
		l.note("evicted", "closed", "remote", "192.0.2.1:1")
	}
	l.note("timeout", "timed out")
	if n := logs.count("closed"); n != 1 {
		t.Errorf("%d lines for 100 refusals, want 1 before the window ends", n)
	}
	l.flush()
	l.flush()
	if n := logs.count("closed"); n != 2 {
		t.Errorf("%d lines after flushing, want 2", n)
	}
	if n := logs.count("timed out"); n != 1 {
		t.Errorf("%d lines of another kind, want 1", n)
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		key   string
		local bool
	}{
		{"192.0.2.7:1935", "192.0.2.7", false},
		{"[::ffff:192.0.2.7]:1935", "192.0.2.7", false},
		{"[2001:db8:1:2:3:4:5:6]:1935", "2001:db8:1:2::/64", false},
		{"[2001:db8:1:2:ffff::1]:40000", "2001:db8:1:2::/64", false},
		{"127.0.0.1:5000", "127.0.0.1", true},
		{"127.0.0.2:5000", "127.0.0.2", true},
		{"[::1]:5000", "::/64", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a, err := net.ResolveTCPAddr("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if key, local := addrKey(a); key != tc.key || local != tc.local {
				t.Errorf("addrKey = %q, %v; want %q, %v", key, local, tc.key, tc.local)
			}
		})
	}
}

// TestFFmpegDuringIdleFlood: a real ffmpeg publisher gets in while idle
// connections hold every place not kept for publishers.
func TestFFmpegDuringIdleFlood(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("no ffmpeg")
	}
	h, base := startGated(t, Config{MaxConns: 40, PublishTimeout: time.Minute, ReadTimeout: time.Minute})
	h.release()
	// The flood is in place once 60 are closed: those above MaxConns.
	awaitN(t, openIdle(t, strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/"), 100), 60, "idle connections closed")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
		"-f", "flv", base+"ff").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if name := await(t, h.published); name != "ff" {
		t.Errorf("published %q", name)
	}
}

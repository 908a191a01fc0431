package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/internal/relay"
	"github.com/golivestream/live/publisher"
)

// gateHandler accepts every stream; its sessions' Close reports on closing
// and then waits for unblock, as a slow flush of the last segments would.
type gateHandler struct {
	published chan string // each stream accepted
	closing   chan string
	unblock   chan struct{}
	once      sync.Once
	srv       *Server // the server it is the handler of
	// drops counts the sessions that ended with Drop (their publisher
	// lost), not Close.
	drops atomic.Int32
}

// release lets every Close return.
func (h *gateHandler) release() { h.once.Do(func() { close(h.unblock) }) }

func (h *gateHandler) Publish(name string, _ []codecs.Codec, _ time.Time) (Session, error) {
	h.published <- name
	return gateSession{h, name}, nil
}

type gateSession struct {
	h    *gateHandler
	name string
}

func (gateSession) WriteVideo(int, time.Duration, time.Duration, [][]byte) error { return nil }
func (gateSession) WriteAudio(int, time.Duration, []byte) error                  { return nil }
func (s gateSession) Close() {
	s.h.closing <- s.name
	<-s.h.unblock
}

func (s gateSession) Drop() {
	s.h.drops.Add(1)
	s.Close()
}

// clipLoadDemo loads the demo clip (internal/democlip), which the tests'
// publishers send.
func clipLoadDemo(t testing.TB) *publisher.Clip {
	t.Helper()
	c, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startGated runs a Server configured as cfg, with a gateHandler, on
// cfg.Listener or else on loopback.
func startGated(t *testing.T, cfg Config) (*gateHandler, string) {
	t.Helper()
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	h := &gateHandler{published: make(chan string, 4), closing: make(chan string, 4), unblock: make(chan struct{})}
	cfg.Listener, cfg.Handler = ln, h
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(h.release) // first: a test that failed may not have
	return h, "rtmp://" + ln.Addr().String() + "/live/"
}

// A publisher that reconnects while its previous connection's stream is
// still closing waits for that close instead of being refused as a
// duplicate; a second publisher while the first is live is refused.
func TestReconnectWhileClosing(t *testing.T) {
	events := logtest.New(64)
	h, base := startGated(t, Config{Logger: slog.New(events)})
	clip := clipLoadDemo(t)
	cfg := publisher.Config{URL: base + "again", Clip: clip, Loops: 1, Speed: -1}

	if err := publisher.Publish(context.Background(), cfg); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if name := await(t, h.closing); name != "again" {
		t.Fatalf("closing %q", name)
	}
	second := make(chan error, 1)
	go func() { second <- publisher.Publish(context.Background(), cfg) }()
	events.Await(t, "waiting for the stream's previous publisher")
	h.release() // the first stream finishes closing
	if err := <-second; err != nil {
		t.Errorf("second publish, after a reconnect: %v", err)
	}
	await(t, h.closing)
	if n := len(h.published); n != 2 {
		t.Errorf("handler saw %d publishes, want 2", n)
	}
}

// While a publisher is live, another on the same name is refused at once.
func TestDuplicatePublisherRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, base := startGated(t, Config{Registerer: reg})
	h.release()
	clip := clipLoadDemo(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- publisher.Publish(ctx, publisher.Config{URL: base + "dup", Clip: clip}) }()
	await(t, h.published) // the first is live
	err := publisher.Publish(context.Background(), publisher.Config{URL: base + "dup", Clip: clip, Loops: 1, Speed: -1})
	if !errors.Is(err, publisher.ErrRejected) {
		t.Errorf("second publisher: %v, want a refusal", err)
	}
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "busy"); n != 1 {
		t.Errorf("refused busy %v, want 1", n)
	}
	if n := metricValue(t, reg, "live_ingest_publishers"); n != 1 {
		t.Errorf("live_ingest_publishers %v, want 1", n)
	}
	if n := metricValue(t, reg, "live_ingest_received_bytes_total"); n < 1000 {
		t.Errorf("live_ingest_received_bytes_total %v", n)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first publisher: %v", err)
	}
}

// frozenPublisher starts a server with cfg and a publisher of the demo
// clip to stream "cam" through a relay, and freezes the relay's uplink
// once the stream is live: the publisher's connection stays open, silent.
// first gets how that publisher ended.
func frozenPublisher(t *testing.T, cfg Config) (h *gateHandler, base string, clip *publisher.Clip, proxy *relay.Relay, first <-chan error) {
	t.Helper()
	h, base = startGated(t, cfg)
	h.release()
	clip = clipLoadDemo(t)
	proxy = relay.Start(t, strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/"))
	done := make(chan error, 1)
	go func() {
		done <- publisher.Publish(context.Background(), publisher.Config{URL: "rtmp://" + proxy.Addr() + "/live/cam", Clip: clip})
	}()
	await(t, h.published) // the first is live
	proxy.Freeze()
	return h, base, clip, proxy, done
}

// A publisher silent for TakeoverAfter (its encoder lost the connection
// and reconnected) is replaced by the new connection for its stream, long
// before ReadTimeout would have ended it.
func TestTakeoverSilentPublisher(t *testing.T) {
	const takeover = 300 * time.Millisecond
	events := logtest.New(64)
	reg := prometheus.NewRegistry()
	h, base, clip, proxy, first := frozenPublisher(t, Config{TakeoverAfter: takeover, ReadTimeout: time.Minute, Logger: slog.New(events), Registerer: reg})
	start := time.Now()
	<-time.After(takeover) // the silence the server waits for
	var err error
	for range 3 { // bytes in flight may have reached it a little later
		if err = publisher.Publish(context.Background(), publisher.Config{URL: base + "cam", Clip: clip, Loops: 1, Speed: -1}); err == nil {
			break
		}
		if !errors.Is(err, publisher.ErrRejected) {
			t.Fatal(err)
		}
		<-time.After(takeover)
	}
	if err != nil {
		t.Fatalf("the reconnecting publisher was refused: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("takeover after %v", d)
	}
	events.Await(t, "replacing the stream's silent publisher")
	if name := await(t, h.published); name != "cam" {
		t.Errorf("published %q", name)
	}
	proxy.Close()
	if err := <-first; err == nil {
		t.Errorf("the replaced publisher ended without an error")
	}
	if n := metricValue(t, reg, "live_ingest_takeovers_total"); n != 1 {
		t.Errorf("live_ingest_takeovers_total %v, want 1", n)
	}
	if n := h.drops.Load(); n != 1 {
		t.Errorf("%d sessions dropped, want the replaced one's", n)
	}
}

// TestNoTakeover: with a negative TakeoverAfter, a silent publisher
// keeps its stream: a newcomer is refused however long the first has
// sent nothing (here longer than TestTakeoverSilentPublisher waits).
func TestNoTakeover(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, base, clip, proxy, first := frozenPublisher(t, Config{TakeoverAfter: -1, ReadTimeout: time.Minute, Registerer: reg})
	<-time.After(time.Second) // silent for longer than a takeover needs
	err := publisher.Publish(context.Background(), publisher.Config{URL: base + "cam", Clip: clip, Loops: 1, Speed: -1})
	if !errors.Is(err, publisher.ErrRejected) {
		t.Errorf("a newcomer for a silent publisher's stream: %v, want refused", err)
	}
	if n := metricValue(t, reg, "live_ingest_takeovers_total"); n != 0 {
		t.Errorf("live_ingest_takeovers_total %v, want 0", n)
	}
	proxy.Close()
	<-first
}

// TestEndOfPublishing: a publisher that says it stops (deleteStream, as
// ffmpeg and OBS send) ends its stream; one whose connection breaks
// without saying so is dropped, so that its stream waits for it; a
// server shutting down ends the streams.
func TestEndOfPublishing(t *testing.T) {
	clip := clipLoadDemo(t)
	t.Run("unpublished", func(t *testing.T) {
		h, base := startGated(t, Config{})
		h.release()
		if err := publisher.Publish(context.Background(), publisher.Config{URL: base + "s", Clip: clip, Loops: 1, Speed: -1}); err != nil {
			t.Fatal(err)
		}
		await(t, h.closing)
		if n := h.drops.Load(); n != 0 {
			t.Error("a publisher that unpublished was dropped")
		}
	})
	t.Run("connection lost", func(t *testing.T) {
		h, base := startGated(t, Config{})
		h.release()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- publisher.Publish(ctx, publisher.Config{URL: base + "s", Clip: clip}) }()
		await(t, h.published)
		cancel() // closes the connection, saying nothing
		<-done
		await(t, h.closing)
		if n := h.drops.Load(); n != 1 {
			t.Error("a publisher whose connection closed was not dropped")
		}
	})
	t.Run("server shutdown", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h := &gateHandler{published: make(chan string, 1), closing: make(chan string, 1), unblock: make(chan struct{})}
		h.release()
		srv, err := New(Config{Listener: ln, Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- srv.Run(ctx) }()
		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- publisher.Publish(pctx, publisher.Config{URL: "rtmp://" + ln.Addr().String() + "/live/s", Clip: clip})
		}()
		await(t, h.published)
		stop()
		if err := <-ran; err != nil {
			t.Error(err)
		}
		await(t, h.closing)
		if n := h.drops.Load(); n != 0 {
			t.Error("a shutdown dropped its publisher's stream instead of ending it")
		}
		cancel()
		<-done
	})
}

// await returns the next name ch gives, failing t if none comes within
// 20 s (a publisher that failed), so that a broken test does not hang.
func await(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case name := <-ch:
		return name
	case <-time.After(20 * time.Second):
		t.Fatal("nothing reached the handler")
		return ""
	}
}

// metricValue returns the value of the metric name with labels (name=value
// pairs) in reg, or fails t.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s %v", name, labels)
	return 0
}

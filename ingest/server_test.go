package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/internal/logtest"
)

// gateHandler accepts every stream; its sessions' Close reports on closing
// and then waits for unblock, as a slow flush of the last segments would.
type gateHandler struct {
	published chan string // each stream accepted
	closing   chan string
	unblock   chan struct{}
	once      sync.Once
}

// release lets every Close return.
func (h *gateHandler) release() { h.once.Do(func() { close(h.unblock) }) }

func (h *gateHandler) Publish(name string, _ []codecs.Codec) (Session, error) {
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

// startGated runs a Server with a gateHandler, and auth as its
// Authorize, on loopback.
func startGated(t *testing.T, events slog.Handler, auth func(context.Context, PublishRequest) error) (*gateHandler, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &gateHandler{published: make(chan string, 4), closing: make(chan string, 4), unblock: make(chan struct{})}
	srv, err := New(Config{Listener: ln, Handler: h, Authorize: auth, Logger: slog.New(events)})
	if err != nil {
		t.Fatal(err)
	}
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
	h, base := startGated(t, events, nil)
	clip := clipLoadDemo(t)
	cfg := PublisherConfig{URL: base + "again", Clip: clip, Loops: 1, Speed: -1}

	if err := Publish(context.Background(), cfg); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if name := <-h.closing; name != "again" {
		t.Fatalf("closing %q", name)
	}
	second := make(chan error, 1)
	go func() { second <- Publish(context.Background(), cfg) }()
	events.Await(t, "waiting for the stream's previous publisher")
	h.release() // the first stream finishes closing
	if err := <-second; err != nil {
		t.Errorf("second publish, after a reconnect: %v", err)
	}
	<-h.closing
	if n := len(h.published); n != 2 {
		t.Errorf("handler saw %d publishes, want 2", n)
	}
}

// While a publisher is live, another on the same name is refused at once.
func TestDuplicatePublisherRefused(t *testing.T) {
	h, base := startGated(t, logtest.New(64), nil)
	h.release()
	clip := clipLoadDemo(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- Publish(ctx, PublisherConfig{URL: base + "dup", Clip: clip}) }()
	<-h.published // the first is live
	err := Publish(context.Background(), PublisherConfig{URL: base + "dup", Clip: clip, Loops: 1, Speed: -1})
	if !errors.Is(err, ErrPublishRejected) {
		t.Errorf("second publisher: %v, want a refusal", err)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first publisher: %v", err)
	}
}

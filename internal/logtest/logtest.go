// Package logtest lets tests await what a component logs, instead of
// polling its state.
package logtest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Events is a slog.Handler that passes each record, as its message
// followed by " key=value" for each of the chosen attributes it has, to a
// channel that Await reads. Records nobody awaits are dropped once the
// channel is full.
type Events struct {
	ch   chan string
	keys []string
}

// New returns Events buffering n records, keeping the attributes keys.
func New(n int, keys ...string) Events { return Events{ch: make(chan string, n), keys: keys} }

func (Events) Enabled(context.Context, slog.Level) bool { return true }
func (e Events) WithAttrs([]slog.Attr) slog.Handler     { return e }
func (e Events) WithGroup(string) slog.Handler          { return e }

func (e Events) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if slices.Contains(e.keys, a.Key) {
			msg += " " + a.Key + "=" + a.Value.String()
		}
		return true
	})
	select {
	case e.ch <- msg:
	default: // nobody is listening this far
	}
	return nil
}

// Await returns the first record containing want, failing the test after
// 20 s.
func (e Events) Await(t testing.TB, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case msg := <-e.ch:
			if strings.Contains(msg, want) {
				return msg
			}
		case <-timeout:
			t.Fatalf("nothing logged with %q", want)
			return ""
		}
	}
}

// Logger returns a logger writing records of level and above into t's log
// until the test is over (t.Log panics after it). Call it before starting
// what logs into it, so that its cleanup runs after that has stopped.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// testWriter sends log lines to t.Log until stopped.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool // guarded by mu
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

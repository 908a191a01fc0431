// Package logtest lets tests await what a component logs, instead of
// polling its state.
package logtest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
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

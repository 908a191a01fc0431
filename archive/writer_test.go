package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/archive/storetest"
	"github.com/golivestream/live/internal/logtest"
)

// epochStart is a start time on a millisecond, as records keep it.
var epochStart = time.UnixMilli(1_790_000_000_123).UTC()

// TestRoundTrip writes an epoch of 2 renditions × 20 segments and their
// init segments, and reads it all back.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		chunk   int // ChunkEntries: 7 spreads the S3 index over chunks
	}{
		{"one worker", 1, 0},
		{"four workers", 4, 0},
		{"small chunks", 4, 7},
	}
	for _, sc := range stores {
		for _, tc := range tests {
			t.Run(sc.name+"/"+tc.name, func(t *testing.T) {
				st := sc.new(t)
				reg := prometheus.NewRegistry()
				w, err := NewWriter(WriterConfig{Store: st, Workers: tc.workers, ChunkEntries: tc.chunk, Logger: discard, Registerer: reg})
				if err != nil {
					t.Fatal(err)
				}
				runWriter(t, w)
				f := makeEpoch("demo", "m1abc", 20, epochStart)
				end := epochStart.Add(time.Minute)
				f.write(t, w, end)
				flush(t, w)
				f.check(t, st, end)

				if got := metric(t, reg, "archive_written_total", "kind", "segment"); got != 40 {
					t.Errorf("archive_written_total{segment} = %v, want 40", got)
				}
				if got := metric(t, reg, "archive_queued_total", "kind", "init"); got != 2 {
					t.Errorf("archive_queued_total{init} = %v, want 2", got)
				}
				if got := metric(t, reg, "archive_queue_depth"); got != 0 {
					t.Errorf("archive_queue_depth = %v after flush", got)
				}
				r, _ := NewReader(ReaderConfig{Store: st})
				eps, err := r.AllEpochs(t.Context())
				if err != nil || len(eps) != 1 || !eps[0].HasMeta || eps[0].Meta.Epoch != "m1abc" {
					t.Errorf("AllEpochs = %+v, %v", eps, err)
				}
			})
		}
	}
}

// TestStoreDown makes the store hang or fail while segments are
// queued: enqueueing never waits, and once the store is back every
// segment is written (they are within the queue's bound).
func TestStoreDown(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name  string
		fault func(*storetest.Faulty) <-chan struct{}
		full  bool
	}{
		{"hangs", func(f *storetest.Faulty) <-chan struct{} { return f.Hang() }, false},
		{"fails", func(f *storetest.Faulty) <-chan struct{} { f.Fail(errBoom); return nil }, false},
		{"full", func(f *storetest.Faulty) <-chan struct{} {
			f.Fail(fmt.Errorf("put: %w: no space left on device", store.ErrFull))
			return nil
		}, true},
	}
	for _, sc := range stores {
		for _, tc := range tests {
			t.Run(sc.name+"/"+tc.name, func(t *testing.T) {
				inner := sc.new(t)
				faulty, st := storetest.Wrap(inner)
				reg := prometheus.NewRegistry()
				logs := logtest.New(64)
				w, err := NewWriter(WriterConfig{
					Store: st, Workers: 2, MaxQueued: 100, Registerer: reg, Logger: slog.New(logs),
					RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond, WriteTimeout: time.Minute,
				})
				if err != nil {
					t.Fatal(err)
				}
				held := tc.fault(faulty)
				runWriter(t, w)
				f := makeEpoch("down", "m1abd", 20, epochStart)
				ep, err := w.Begin(f.stream, f.epoch, f.start)
				if err != nil {
					t.Fatal(err)
				}
				if held != nil {
					<-held // a write hangs in the store
				} else if err := faulty.AwaitAttempts(t.Context(), 3); err != nil {
					t.Fatal(err) // writes fail and are retried
				}
				var slowest time.Duration
				for _, r := range f.renditions {
					began := time.Now()
					if err := ep.Init(Init{Rendition: r, Wall: f.start, Data: f.inits[r.ID]}); err != nil {
						t.Fatal(err)
					}
					slowest = max(slowest, time.Since(began))
				}
				for _, s := range f.segs {
					began := time.Now()
					if err := ep.Segment(s); err != nil {
						t.Fatal(err)
					}
					slowest = max(slowest, time.Since(began))
				}
				// An enqueue takes microseconds; 50 ms leaves room for a
				// loaded machine under the race detector, not for a write.
				if slowest > 50*time.Millisecond {
					t.Errorf("an enqueue took %v while the store was down", slowest)
				}
				if held == nil {
					logs.Await(t, "archive")
				}
				if got := metric(t, reg, "archive_queue_depth"); got < 40 {
					t.Errorf("archive_queue_depth = %v while the store is down, want >= 40", got)
				}
				faulty.Release()
				end := epochStart.Add(time.Hour)
				ep.End(end)
				flush(t, w)
				f.check(t, inner, end)
				if got := metric(t, reg, "archive_dropped_total", "kind", "segment"); got != 0 {
					t.Errorf("archive_dropped_total = %v, want 0", got)
				}
				if held == nil && metric(t, reg, "archive_retries_total") == 0 {
					t.Error("no retry counted")
				}
				if got := metric(t, reg, "archive_store_full_total"); (got > 0) != tc.full {
					t.Errorf("archive_store_full_total = %v", got)
				}
			})
		}
	}
}

// TestQueueOverflow fills the queue while the store hangs: the oldest
// queued segments are dropped, counted and logged; inits are kept.
func TestQueueOverflow(t *testing.T) {
	inner := newDirStore(t)
	faulty, st := storetest.Wrap(inner)
	reg := prometheus.NewRegistry()
	logs := logtest.New(64, "dropped")
	w, err := NewWriter(WriterConfig{
		Store: st, Workers: 1, MaxQueued: 10, Registerer: reg, Logger: slog.New(logs),
		RetryMin: time.Millisecond, RetryMax: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	held := faulty.Hang()
	runWriter(t, w)
	f := makeEpoch("over", "m1abe", 16, epochStart)
	ep, err := w.Begin(f.stream, f.epoch, f.start)
	if err != nil {
		t.Fatal(err)
	}
	<-held // the record's write hangs: one item in flight, not a segment
	v0 := f.renditions[1]
	if err := ep.Init(Init{Rendition: v0, Data: f.inits["v0"]}); err != nil {
		t.Fatal(err)
	}
	var sent []Segment
	for _, s := range f.segs {
		if s.Rendition == "v0" {
			sent = append(sent, s)
			if err := ep.Segment(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 16 segments, room for 10: the 6 oldest go.
	if got := metric(t, reg, "archive_dropped_total", "kind", "segment", "reason", "queue_full"); got != 6 {
		t.Errorf("archive_dropped_total = %v, want 6", got)
	}
	// The first drop is logged at once, the next ones DropLogInterval
	// later, together.
	logs.Await(t, "archive queue full: dropped the oldest items dropped=")
	faulty.Release()
	flush(t, w)
	r, _ := NewReader(ReaderConfig{Store: inner})
	idx, err := r.Index(t.Context(), f.stream, f.epoch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range idx.Entries {
		got = append(got, strings.TrimPrefix(e.Name(), "v0/"))
	}
	want := []string{"init.mp4"}
	for _, s := range sent[6:] {
		want = append(want, fmt.Sprintf("%d.m4s", s.Number))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archived %v, want %v", got, want)
	}
}

// TestDrainAtShutdown checks that what is queued when Run's context ends
// is still written, within DrainTimeout.
func TestDrainAtShutdown(t *testing.T) {
	st := newDirStore(t)
	w, err := NewWriter(WriterConfig{Store: st, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	f := makeEpoch("drain", "m1abf", 5, epochStart)
	end := epochStart.Add(time.Minute)
	f.write(t, w, end) // queued before Run
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	f.check(t, st, end)
}

// TestInvalid checks the refusals of malformed names and segments.
func TestInvalid(t *testing.T) {
	w, err := NewWriter(WriterConfig{Store: newDirStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"", "m1"}, {"a/b", "m1"}, {"s", "0x"}, {"s", ""}} {
		if _, err := w.Begin(c[0], c[1], time.Time{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Begin(%q, %q): %v", c[0], c[1], err)
		}
	}
	ep, err := w.Begin("s", "m1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Segment{
		{Rendition: "../x", Timescale: 1, Data: []byte{1}},
		{Rendition: "v0", Data: []byte{1}},
		{Rendition: "v0", Timescale: 1},
	} {
		if err := ep.Segment(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Segment(%+v): %v", s, err)
		}
	}
	if err := ep.Init(Init{Rendition: Rendition{ID: "V0"}, Data: []byte{1}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Init of V0: %v", err)
	}
	if _, err := NewWriter(WriterConfig{}); err == nil {
		t.Error("NewWriter without Store: no error")
	}
}

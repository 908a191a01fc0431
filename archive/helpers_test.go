package archive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/golivestream/live/archive/dirstore"
	"github.com/golivestream/live/archive/s3store/s3test"
	"github.com/golivestream/live/archive/store"
)

// newDirStore returns a directory store in a temporary directory.
func newDirStore(t testing.TB) *dirstore.Store {
	t.Helper()
	st, err := dirstore.New(dirstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// stores are the stores the archive is tested on.
var stores = []struct {
	name string
	new  func(testing.TB) store.Store
}{
	{"dir", func(t testing.TB) store.Store { return newDirStore(t) }},
	{"s3", func(t testing.TB) store.Store { return s3test.New(t, "s3://archive/fleet") }},
}

// fakeEpoch is the content of an epoch made up for tests.
type fakeEpoch struct {
	stream, epoch string
	start         time.Time
	renditions    []Rendition
	inits         map[string][]byte
	segs          []Segment // in the order given
}

// makeEpoch makes an epoch of renditions v0 (90 kHz) and a0 (48 kHz),
// with n one-second segments each, interleaved, of random bytes.
func makeEpoch(stream, epoch string, n int, start time.Time) *fakeEpoch {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	f := &fakeEpoch{
		stream: stream, epoch: epoch, start: start,
		renditions: []Rendition{
			{ID: "a0", Codec: "mp4a.40.2", Bandwidth: 128000, SampleRate: 48000, Channels: 2, Timescale: 48000},
			{ID: "v0", Codec: "avc1.64001f", Bandwidth: 2600000, Width: 1280, Height: 720, FrameRate: 30, Timescale: 90000},
		},
		inits: map[string][]byte{},
	}
	data := func(size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, r := range f.renditions {
		f.inits[r.ID] = data(600 + rng.IntN(100))
	}
	for i := range n {
		for _, r := range f.renditions {
			ts := int64(r.Timescale)
			f.segs = append(f.segs, Segment{
				Rendition: r.ID, Number: uint64(100 + i),
				Start: int64(100+i) * ts, Duration: ts, Timescale: r.Timescale,
				Wall: start.Add(time.Duration(i+1) * time.Second),
				Data: data(2000 + rng.IntN(3000)),
			})
		}
	}
	return f
}

// write enqueues the whole epoch, ended when end is not zero.
func (f *fakeEpoch) write(t testing.TB, w *Writer, end time.Time) *Epoch {
	t.Helper()
	ep, err := w.Begin(f.stream, f.epoch, f.start)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.renditions {
		if err := ep.Init(Init{Rendition: r, Wall: f.start, Data: f.inits[r.ID]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range f.segs {
		if err := ep.Segment(s); err != nil {
			t.Fatal(err)
		}
	}
	if !end.IsZero() {
		ep.End(end)
	}
	return ep
}

// check reads the epoch back and compares it with f: the record, the
// index complete and ordered, every object byte-identical.
func (f *fakeEpoch) check(t *testing.T, st store.Store, wantEnd time.Time) {
	t.Helper()
	ctx := t.Context()
	r, err := NewReader(ReaderConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Meta(ctx, f.stream, f.epoch)
	if err != nil {
		t.Fatal(err)
	}
	if m.Stream != f.stream || m.Epoch != f.epoch || !m.Start.Equal(f.start) ||
		m.Ended != !wantEnd.IsZero() || !m.End.Equal(wantEnd) || fmt.Sprint(m.Renditions) != fmt.Sprint(f.renditions) {
		t.Errorf("record %+v, want stream %s epoch %s start %v end %v renditions %v",
			m, f.stream, f.epoch, f.start, wantEnd, f.renditions)
	}
	idx, err := r.Index(ctx, f.stream, f.epoch)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Skipped != 0 {
		t.Errorf("%d index lines skipped", idx.Skipped)
	}
	var want []Entry
	for _, rd := range f.renditions {
		want = append(want, Entry{Rendition: rd.ID, Kind: KindInit, Size: int64(len(f.inits[rd.ID]))})
		for _, s := range f.segs {
			if s.Rendition == rd.ID {
				want = append(want, Entry{
					Rendition: s.Rendition, Kind: KindSegment, Number: s.Number, Start: s.Start,
					Duration: s.Duration, Timescale: s.Timescale, Wall: s.Wall.UTC(), Size: int64(len(s.Data)),
				})
			}
		}
	}
	if len(idx.Entries) != len(want) {
		t.Fatalf("index has %d entries, want %d", len(idx.Entries), len(want))
	}
	for i, e := range idx.Entries {
		w := want[i]
		if e.Kind == KindInit {
			w.Wall = f.start
		}
		if e.Wall.Equal(w.Wall) {
			w.Wall = e.Wall
		}
		if _, packs := st.(store.Appender); packs && e.Kind == KindSegment {
			w.Packed, w.Offset = true, e.Offset // the bytes compared below
		}
		if e != w {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
		b, err := r.Object(ctx, f.stream, f.epoch, e, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		wantData := f.inits[e.Rendition]
		if e.Kind == KindSegment {
			for _, s := range f.segs {
				if s.Rendition == e.Rendition && s.Number == e.Number {
					wantData = s.Data
				}
			}
		}
		if !bytes.Equal(b, wantData) {
			t.Errorf("object %s differs (%d bytes, want %d)", e.Name(), len(b), len(wantData))
		}
	}
}

// runWriter starts w.Run, stopped and awaited at the end of the test.
func runWriter(t testing.TB, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// flush waits for w to write what is queued.
func flush(t testing.TB, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of the counter or gauge name with labels
// (name=value pairs) in reg, 0 when absent.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// discard is a logger for tests that await no log line.
var discard = slog.New(slog.DiscardHandler)

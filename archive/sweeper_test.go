package archive

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive/store"
)

// TestRetention sweeps an archive of epochs old and new, ended and not,
// pinned and not: only the old unpinned ones go.
func TestRetention(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	type epoch struct {
		stream, epoch string
		start         time.Time
		end           time.Time // zero: never ended (a crash)
		clip          *Clip     // a clip to pin it with
		kept          bool
	}
	epochs := []epoch{
		{stream: "a", epoch: "m1", start: now.Add(-10 * day), end: now.Add(-9 * day), kept: false},
		{stream: "a", epoch: "m2", start: now.Add(-10 * day), end: now.Add(-6 * day), kept: true},
		{stream: "a", epoch: "m3", start: now.Add(-20 * day), kept: false}, // crashed long ago
		{stream: "b", epoch: "m4", start: now.Add(-20 * day), end: now.Add(-19 * day), kept: true,
			clip: &Clip{ID: "goal", From: 101, To: 102}},
		{stream: "b", epoch: "m5", start: now.Add(-20 * day), end: now.Add(-19 * day), kept: false,
			clip: &Clip{ID: "old-goal", From: 100, To: 100, Expires: now.Add(-time.Hour)}},
		{stream: "b", epoch: "m6", start: now.Add(-20 * day), end: now.Add(-19 * day), kept: true,
			clip: &Clip{ID: "later", From: 100, To: 100, Expires: now.Add(time.Hour)}},
	}
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			ctx := t.Context()
			st := sc.new(t)
			w, err := NewWriter(WriterConfig{Store: st, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w)
			for _, e := range epochs {
				makeEpoch(e.stream, e.epoch, 2, e.start).write(t, w, e.end)
			}
			flush(t, w)
			for _, e := range epochs {
				if e.clip != nil {
					c := *e.clip
					c.Stream, c.Epoch = e.stream, e.epoch
					if err := PutClip(ctx, st, c); err != nil {
						t.Fatal(err)
					}
				}
			}
			reg := prometheus.NewRegistry()
			sw, err := NewSweeper(SweeperConfig{Store: st, Retention: 7 * day, Logger: discard, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			res, err := sw.Sweep(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			want := SweepResult{Deleted: 3, Pinned: 2, Kept: 1, ExpiredClips: 1}
			if res != want {
				t.Errorf("Sweep = %+v, want %+v", res, want)
			}
			r, _ := NewReader(ReaderConfig{Store: st})
			all, err := r.AllEpochs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, e := range all {
				left = append(left, e.Meta.Stream+"/"+e.Meta.Epoch)
				if e.Meta.Deleting {
					t.Errorf("%s/%s still marked Deleting", e.Meta.Stream, e.Meta.Epoch)
				}
			}
			var wantLeft []string
			for _, e := range epochs {
				if e.kept {
					wantLeft = append(wantLeft, e.stream+"/"+e.epoch)
				}
			}
			if !slices.Equal(left, wantLeft) {
				t.Errorf("left %v, want %v", left, wantLeft)
			}
			if got := metric(t, reg, "archive_retention_deleted_epochs_total"); got != 3 {
				t.Errorf("archive_retention_deleted_epochs_total = %v", got)
			}
			if got := metric(t, reg, "archive_retention_pinned_epochs"); got != 2 {
				t.Errorf("archive_retention_pinned_epochs = %v", got)
			}

			// A clip of a deleted epoch is refused, and not left behind.
			err = PutClip(ctx, st, Clip{ID: "late", Stream: "a", Epoch: "m1", From: 100, To: 100})
			if !errors.Is(err, ErrEpochGone) {
				t.Errorf("clip of a deleted epoch: %v", err)
			}
			clips, err := Clips(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range clips {
				ids = append(ids, c.ID)
			}
			if !slices.Equal(ids, []string{"goal", "later"}) {
				t.Errorf("clips %v", ids)
			}
			// Unpinned, the epoch goes at the next sweep.
			if err := DeleteClip(ctx, st, "goal"); err != nil {
				t.Fatal(err)
			}
			if res, err := sw.Sweep(ctx, now); err != nil || res.Deleted != 1 {
				t.Errorf("sweep after unpinning: %+v, %v", res, err)
			}
			if _, err := r.Meta(ctx, "b", "m4"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("unpinned epoch: %v", err)
			}
		})
	}
}

// TestSweepMarkedPinned checks the other half of the pin protocol: an
// epoch marked Deleting by a sweep that stopped, and pinned since, is
// unmarked and kept; PutClip refuses an epoch marked Deleting.
func TestSweepMarkedPinned(t *testing.T) {
	ctx := t.Context()
	st := newDirStore(t)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	old := now.Add(-30 * 24 * time.Hour)
	sw, err := NewSweeper(SweeperConfig{Store: st, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	m := EpochMeta{Stream: "c", Epoch: "m7", Start: old, Ended: true, End: old, Deleting: true}
	if err := sw.putMeta(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := PutClip(ctx, st, Clip{ID: "x", Stream: "c", Epoch: "m7"}); !errors.Is(err, ErrEpochGone) {
		t.Errorf("clip of an epoch being deleted: %v", err)
	}
	// A clip that got in before the mark (its check came first).
	if err := st.Put(ctx, clipKey("y"), []byte(`{"id":"y","stream":"c","epoch":"m7","from":0,"to":0,"created":"2026-12-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	res, err := sw.Sweep(ctx, now)
	if err != nil || res.Pinned != 1 || res.Deleted != 0 {
		t.Fatalf("Sweep = %+v, %v", res, err)
	}
	r, _ := NewReader(ReaderConfig{Store: st})
	if got, err := r.Meta(ctx, "c", "m7"); err != nil || got.Deleting {
		t.Errorf("record after the sweep: %+v, %v", got, err)
	}
}

package archive

import (
	"bytes"
	"testing"
	"time"

	"github.com/golivestream/live/archive/store"
)

// TestLocate finds segments by name, as the origin does for a segment
// URL: in a pack, at the offset its index line gives, including
// segments appended after the Reader first read the index; and in an
// archive of one object per segment (as S3 keeps them, and as a local
// disk did before packs), by name.
func TestLocate(t *testing.T) {
	tests := []struct {
		name   string
		packed bool
	}{{"packed", true}, {"one object per segment", false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDirStore(t)
			var wst store.Store = dir
			if !tc.packed {
				wst = struct{ store.Store }{dir} // hides Append: objects of their own
			}
			w, err := NewWriter(WriterConfig{Store: wst, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w)
			f := makeEpoch("loc", "m1abh", 6, epochStart)
			half := len(f.segs) / 2
			all := f.segs
			f.segs = all[:half]
			ep := f.write(t, w, time.Time{})
			flush(t, w)
			r, err := NewReader(ReaderConfig{Store: dir})
			if err != nil {
				t.Fatal(err)
			}
			check := func(segs []Segment) {
				t.Helper()
				for _, s := range segs {
					e, err := r.Locate(t.Context(), f.stream, f.epoch, Entry{Rendition: s.Rendition, Kind: KindSegment, Number: s.Number})
					if err != nil {
						t.Fatal(err)
					}
					if e.Packed != tc.packed || tc.packed && e.Size != int64(len(s.Data)) {
						t.Errorf("%s located as %+v, want packed %v, %d bytes", e.Name(), e, tc.packed, len(s.Data))
					}
					b, err := r.Object(t.Context(), f.stream, f.epoch, e, 0, -1)
					if err != nil || !bytes.Equal(b, s.Data) {
						t.Errorf("%s: %d bytes, %v; differs from what was archived", e.Name(), len(b), err)
					}
					if part, err := r.Object(t.Context(), f.stream, f.epoch, e, 10, 20); err != nil || !bytes.Equal(part, s.Data[10:30]) {
						t.Errorf("%s bytes 10-29: %v", e.Name(), err)
					}
				}
			}
			check(all[:half])
			// The epoch goes on: the Reader reads what was appended since.
			for _, s := range all[half:] {
				if err := ep.Segment(s); err != nil {
					t.Fatal(err)
				}
			}
			flush(t, w)
			check(all)
			missing := Entry{Rendition: "v0", Kind: KindSegment, Number: 999}
			e, err := r.Locate(t.Context(), f.stream, f.epoch, missing)
			if err != nil || e != missing {
				t.Errorf("a segment not archived located as %+v, %v", e, err)
			}
			if _, err := r.Object(t.Context(), f.stream, f.epoch, e, 0, -1); err == nil {
				t.Error("a segment not archived was read")
			}
		})
	}
}

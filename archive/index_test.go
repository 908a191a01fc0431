package archive

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entryCases are index lines, valid and not; they seed FuzzParseEntry.
var entryCases = []struct {
	name, line string
	ok         bool
}{
	{"segment", `{"rendition":"v0","kind":"segment","number":12,"start":1080000,"duration":90000,"timescale":90000,"wall":"2026-12-02T06:44:01.123Z","size":312345,"key":"v0/12.m4s"}`, true},
	{"init", `{"rendition":"a0","kind":"init","number":0,"start":0,"duration":0,"timescale":0,"wall":"2026-12-02T06:44:00.000Z","size":700,"key":"a0/init.mp4"}`, true},
	{"offset wall", `{"rendition":"v1","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T07:44:01.5+01:00","size":1,"key":"v1/1.m4s"}`, true},
	{"unknown field kept out", `{"rendition":"v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":1,"key":"v0/1.m4s","x":1}`, true},
	{"torn", `{"rendition":"v0","kind":"segment","number":12,"start":1080000,"dur`, false},
	{"empty", ``, false},
	{"not an object", `[1,2]`, false},
	{"bad rendition", `{"rendition":"../v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":1,"key":"../v0/1.m4s"}`, false},
	{"key elsewhere", `{"rendition":"v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":1,"key":"../../other/v0/1.m4s"}`, false},
	{"unknown kind", `{"rendition":"v0","kind":"part","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":1,"key":"v0/1.m4s"}`, false},
	{"no timescale", `{"rendition":"v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":0,"wall":"2026-12-02T06:44:01Z","size":1,"key":"v0/1.m4s"}`, false},
	{"negative size", `{"rendition":"v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":-1,"key":"v0/1.m4s"}`, false},
	{"init with time", `{"rendition":"v0","kind":"init","number":3,"start":0,"duration":0,"timescale":0,"wall":"2026-12-02T06:44:01Z","size":1,"key":"v0/init.mp4"}`, false},
	{"bad wall", `{"rendition":"v0","kind":"segment","number":1,"start":0,"duration":1,"timescale":1,"wall":"yesterday","size":1,"key":"v0/1.m4s"}`, false},
	{"number too big", `{"rendition":"v0","kind":"segment","number":18446744073709551616,"start":0,"duration":1,"timescale":1,"wall":"2026-12-02T06:44:01Z","size":1,"key":"v0/18446744073709551616.m4s"}`, false},
}

func TestParseEntry(t *testing.T) {
	for _, tc := range entryCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEntry([]byte(tc.line))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseEntry: %+v, %v; want ok=%v", e, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if err == nil {
				assertRoundTrip(t, e)
			}
		})
	}
}

// assertRoundTrip checks that e, written and parsed again, is e.
func assertRoundTrip(t *testing.T, e Entry) {
	t.Helper()
	line := e.AppendLine(nil)
	if line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("line %q is not one line", line)
	}
	back, err := ParseEntry(line[:len(line)-1])
	if err != nil {
		t.Fatalf("%q does not parse again: %v", line, err)
	}
	want := e
	want.Wall = e.Wall.Truncate(time.Millisecond)
	if !back.Wall.Equal(want.Wall) {
		t.Errorf("wall %v, want %v", back.Wall, want.Wall)
	}
	back.Wall, want.Wall = time.Time{}, time.Time{}
	if back != want {
		t.Errorf("round trip gives %+v, want %+v", back, want)
	}
}

// FuzzParseEntry checks that no line makes the parser panic, and that
// every line it accepts writes back to a line that parses the same.
func FuzzParseEntry(f *testing.F) {
	for _, tc := range entryCases {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseEntry(line)
		if err != nil {
			return
		}
		assertRoundTrip(t, e)
	})
}

// TestTornIndex cuts an appended index at every byte of its last line,
// as a crash may: the reader returns every complete entry, and a writer
// taking the epoch up again starts its lines on a new line.
func TestTornIndex(t *testing.T) {
	st := newDirStore(t)
	w, err := NewWriter(WriterConfig{Store: st, Workers: 1, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	f := makeEpoch("torn", "m1abg", 3, epochStart)
	f.write(t, w, time.Time{})
	flush(t, w)
	path := filepath.Join(st.Dir(), filepath.FromSlash(EpochPrefix(f.stream, f.epoch)+indexName))
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Count(string(whole), "\n") // 2 inits + 6 segments
	lastLine := strings.LastIndexByte(string(whole[:len(whole)-1]), '\n') + 1
	r, _ := NewReader(ReaderConfig{Store: st})
	for cut := lastLine; cut <= len(whole); cut++ {
		if err := os.WriteFile(path, whole[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		idx, err := r.Index(t.Context(), f.stream, f.epoch)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		want, skipped := entries-1, 1
		switch {
		case cut == lastLine:
			skipped = 0 // the last line is gone whole
		case cut >= len(whole)-1:
			want, skipped = entries, 0 // whole, with or without its newline
		}
		if len(idx.Entries) != want || idx.Skipped != skipped {
			t.Errorf("cut at %d of %d: %d entries, %d skipped; want %d, %d",
				cut, len(whole), len(idx.Entries), idx.Skipped, want, skipped)
		}
	}

	// Torn in the middle of its last line, and with part of a segment
	// at the end of the pack that no line names, the epoch is taken up
	// again: the new segments go after that part, where their lines say.
	if err := os.WriteFile(path, whole[:lastLine+10], 0o644); err != nil {
		t.Fatal(err)
	}
	pack, err := os.OpenFile(filepath.Join(st.Dir(), filepath.FromSlash(EpochPrefix(f.stream, f.epoch)+packName)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Write(bytes.Repeat([]byte{0xEE}, 1234)); err != nil {
		t.Fatal(err)
	}
	if err := pack.Close(); err != nil {
		t.Fatal(err)
	}
	ep, err := w.Begin(f.stream, f.epoch, f.start)
	if err != nil {
		t.Fatal(err)
	}
	more := makeEpoch("torn", "m1abg", 4, epochStart).segs[6:]
	for _, s := range more {
		if err := ep.Segment(s); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, w)
	idx, err := r.Index(t.Context(), f.stream, f.epoch)
	if err != nil {
		t.Fatal(err)
	}
	if want := entries - 1 + len(more); len(idx.Entries) != want || idx.Skipped != 1 {
		t.Errorf("taken up again: %d entries, %d skipped; want %d, 1", len(idx.Entries), idx.Skipped, want)
	}
	sent := map[string][]byte{}
	for _, s := range append(f.segs, more...) {
		sent[Entry{Rendition: s.Rendition, Kind: KindSegment, Number: s.Number}.Name()] = s.Data
	}
	for _, e := range idx.Entries {
		if e.Kind != KindSegment {
			continue
		}
		loc, err := r.Locate(t.Context(), f.stream, f.epoch, Entry{Rendition: e.Rendition, Kind: e.Kind, Number: e.Number})
		if err != nil || loc != e {
			t.Errorf("located %s as %+v, %v; indexed %+v", e.Name(), loc, err, e)
		}
		b, err := r.Object(t.Context(), f.stream, f.epoch, e, 0, -1)
		if err != nil || !bytes.Equal(b, sent[e.Name()]) {
			t.Errorf("%s (packed %v at %d): %d bytes, %v; differs from what was sent", e.Name(), e.Packed, e.Offset, len(b), err)
		}
	}
}

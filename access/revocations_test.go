package access

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseRevocations(t *testing.T) {
	tests := []struct {
		name, in string
		has      []string
		hasNot   []string
		n        int // -1: an error
	}{
		{"empty", "", nil, []string{""}, 0},
		{"ids", "u1\nu2\r\n  u3  \n", []string{"u1", "u2", "u3"}, []string{"u4", ""}, 3},
		{"comments and blanks", "# revoked 2026-01-01\n\nu1\n   \n#u2\n", []string{"u1"}, []string{"u2", "#u2"}, 1},
		{"duplicates", "u1\nu1\n", []string{"u1"}, nil, 1},
		{"no final newline", "u1", []string{"u1"}, nil, 1},
		{"id too long", strings.Repeat("x", maxSession+1), nil, nil, -1},
		{"id of the longest", strings.Repeat("x", maxSession), []string{strings.Repeat("x", maxSession)}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseRevocations([]byte(tt.in))
			if tt.n < 0 {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rs.Len() != tt.n {
				t.Errorf("%d ids, want %d", rs.Len(), tt.n)
			}
			for _, id := range tt.has {
				if !rs.Has(id) {
					t.Errorf("%q not revoked", id)
				}
			}
			for _, id := range tt.hasNot {
				if rs.Has(id) {
					t.Errorf("%q revoked", id)
				}
			}
		})
	}
	var none *RevocationSet
	if none.Has("u1") || none.Len() != 0 {
		t.Error("a nil set revokes")
	}
}

func TestUnionRevocations(t *testing.T) {
	a, b, c := NewRevocationSet("u1", "u2"), NewRevocationSet("u2", "u3", "u4"), NewRevocationSet()
	tests := []struct {
		name   string
		sets   []*RevocationSet
		has    []string
		hasNot []string
		n      int
	}{
		{"none", nil, nil, []string{"u1", ""}, 0},
		{"nil and empty", []*RevocationSet{nil, c}, nil, []string{"u1", ""}, 0},
		{"one", []*RevocationSet{a, nil}, []string{"u1", "u2"}, []string{"u3"}, 2},
		{"two overlapping", []*RevocationSet{a, b}, []string{"u1", "u2", "u3", "u4"}, []string{"u5", ""}, 4},
		{"a union of a union", []*RevocationSet{UnionRevocations(a, c), b, NewRevocationSet("u5", "u1")}, []string{"u1", "u4", "u5"}, []string{"u6"}, 5},
	}
	for _, tt := range tests {
		checkSet(t, tt.name, UnionRevocations(tt.sets...), tt.n, tt.has, tt.hasNot)
	}
	if a.Len() != 2 || a.Has("u3") {
		t.Error("a union changed a set it joins")
	}
}

// checkSet checks that rs holds n ids, has those of has and not those of
// hasNot.
func checkSet(t *testing.T, name string, rs *RevocationSet, n int, has, hasNot []string) {
	t.Helper()
	if rs.Len() != n {
		t.Errorf("%s: %d ids, want %d", name, rs.Len(), n)
	}
	for _, id := range has {
		if !rs.Has(id) {
			t.Errorf("%s: %q not revoked", name, id)
		}
	}
	for _, id := range hasNot {
		if rs.Has(id) {
			t.Errorf("%s: %q revoked", name, id)
		}
	}
}

func TestRevocationSetChange(t *testing.T) {
	var none *RevocationSet
	a := NewRevocationSet("u1", "u2")
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprint("m", i)
	}
	big := NewRevocationSet(many...)
	tests := []struct {
		name        string
		from        *RevocationSet
		add, remove []string
		want        []string
	}{
		{"from nil", none, []string{"u1"}, nil, []string{"u1"}},
		{"nothing", a, nil, nil, []string{"u1", "u2"}},
		{"add and remove", a, []string{"u3", "u1"}, []string{"u2", "u9"}, []string{"u1", "u3"}},
		{"in both: removed", a, []string{"u3"}, []string{"u3"}, []string{"u1", "u2"}},
		{"all removed", a, nil, []string{"u1", "u2"}, nil},
		{"from a union", UnionRevocations(a, NewRevocationSet("u2", "u4")), []string{"u5"}, []string{"u1"}, []string{"u2", "u4", "u5"}},
		{"a thousand, one left", big, nil, many[1:], many[:1]},
	}
	for _, tt := range tests {
		checkSet(t, tt.name, tt.from.Change(tt.add, tt.remove), len(tt.want), tt.want, tt.remove)
	}
	if a.Len() != 2 || a.Has("u3") || !a.Has("u2") || big.Len() != 1000 || !big.Has("m999") {
		t.Error("Change changed the set it started from")
	}
}

func TestLoadRevocations(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("u1\n", MaxRevocationsFile/3+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRevocations(big); err == nil {
		t.Error("a file over the bound: no error")
	}
	if _, err := LoadRevocations(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file: no error")
	}
}

// revocationFile returns a RevocationFile at a new path, and the channel
// its Apply sends each set to.
func revocationFile(t *testing.T, interval time.Duration) (*RevocationFile, string, chan *RevocationSet) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "revoked")
	applied := make(chan *RevocationSet, 10)
	f, err := NewRevocationFile(RevocationFileConfig{Path: path, Interval: interval, Apply: func(rs *RevocationSet) { applied <- rs }})
	if err != nil {
		t.Fatal(err)
	}
	return f, path, applied
}

// replace writes data to path as a writer should: a new file renamed
// over the old one.
func replace(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi
}

func TestRevocationFileLoad(t *testing.T) {
	f, path, applied := revocationFile(t, 0)
	steps := []struct {
		name  string
		write func()
		ok    bool // Load applied a list
		err   bool
		has   string
	}{
		{"missing", func() {}, false, true, ""},
		{"first", func() { replace(t, path, "u1\n") }, true, false, "u1"},
		{"unchanged", func() {}, false, false, ""},
		{"replaced", func() { replace(t, path, "u2\n") }, true, false, "u2"},
		{"replaced, same size and time", func() {
			fi := stat(t, path)
			replace(t, path, "u3\n")
			must(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
		}, true, false, "u3"},
		{"rewritten in place", func() {
			fi := stat(t, path)
			must(t, os.WriteFile(path, []byte("u4\nu5\n"), 0o644))
			must(t, os.Chtimes(path, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second)))
		}, true, false, "u5"},
		{"malformed: the last list stays", func() { replace(t, path, strings.Repeat("x", 200)) }, false, true, ""},
		{"removed: the last list stays", func() { must(t, os.Remove(path)) }, false, true, ""},
	}
	for _, s := range steps {
		s.write()
		ok, err := f.Load()
		if ok != s.ok || (err != nil) != s.err {
			t.Fatalf("%s: Load() = %v, %v; want %v, error %v", s.name, ok, err, s.ok, s.err)
		}
		select {
		case rs := <-applied:
			if !s.ok || !rs.Has(s.has) {
				t.Fatalf("%s: applied a list (has %q: %v)", s.name, s.has, rs.Has(s.has))
			}
		default:
			if s.ok {
				t.Fatalf("%s: nothing applied", s.name)
			}
		}
	}
	for _, cfg := range []RevocationFileConfig{{Apply: func(*RevocationSet) {}}, {Path: path}, {Path: path, Apply: func(*RevocationSet) {}, Interval: -1}} {
		if _, err := NewRevocationFile(cfg); err == nil {
			t.Errorf("NewRevocationFile(%+v): no error", cfg)
		}
	}
}

// TestRevocationFileRun: a revocation written while Run follows the
// file reaches the Verifier.
func TestRevocationFileRun(t *testing.T) {
	f, path, applied := revocationFile(t, 10*time.Millisecond)
	replace(t, path, "u1\n")
	if _, err := f.Load(); err != nil {
		t.Fatal(err)
	}
	<-applied
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	replace(t, path, "u1\nu2\n")
	select {
	case rs := <-applied:
		if !rs.Has("u2") {
			t.Error("u2 not revoked")
		}
	case <-ctx.Done():
		t.Fatal("the new list was not applied")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// BenchmarkNewRevocationSet measures the set a PoP makes of the
// directory's list at each change, of a million sessions with ids of 40
// bytes (directory.DefaultMaxSessions), and the memory it holds
// (MB-held), the ids aside: they are the list's.
func BenchmarkNewRevocationSet(b *testing.B) {
	ids := make([]string, 1_000_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rs := NewRevocationSet(ids...)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc-before.HeapAlloc) / 1e6
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		rs = NewRevocationSet(ids...)
	}
	b.ReportMetric(held, "MB-held")
	runtime.KeepAlive(rs)
}

// BenchmarkRevocationSetChange measures a change of one session in a set
// of a million.
func BenchmarkRevocationSetChange(b *testing.B) {
	ids := make([]string, 1_000_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040d", i)
	}
	rs := NewRevocationSet(ids...)
	one := []string{fmt.Sprintf("%040d", -1)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			rs = rs.Change(one, nil)
		} else {
			rs = rs.Change(nil, one)
		}
	}
	if rs.Len() != len(ids) && rs.Len() != len(ids)+1 {
		b.Fatal(rs.Len())
	}
}

package access

import (
	"context"
	"os"
	"path/filepath"
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

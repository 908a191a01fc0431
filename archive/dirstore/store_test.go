package dirstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/archive/storetest"
)

func TestConformance(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "nosync"}[noSync], func(t *testing.T) {
			st, err := New(Config{Dir: t.TempDir(), NoSync: noSync})
			if err != nil {
				t.Fatal(err)
			}
			storetest.Conformance(t, st)
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNewNeedsDir(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without Dir: no error")
	}
}

// TestNoTempLeftBehind checks that Put leaves only the object, and that
// a leftover temporary file (a crash) is hidden and deleted with its
// prefix.
func TestNoTempLeftBehind(t *testing.T) {
	dir := t.TempDir()
	st, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := st.Put(ctx, "s/e/v0/1.m4s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(filepath.Join(dir, "s/e/v0"))
	if err != nil || len(des) != 1 || des[0].Name() != "1.m4s" {
		t.Fatalf("directory holds %v, %v", des, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s/e/v0/.tmp-123"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	es, err := st.List(ctx, "s/e/v0/")
	if err != nil || len(es) != 1 {
		t.Errorf("listed %+v, %v", es, err)
	}
	if err := st.DeletePrefix(ctx, "s/e/"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s/e")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after delete: %v", err)
	}
}

// TestFullDisk checks that a write failing for lack of space says so
// with store.ErrFull. /dev/full answers every write with ENOSPC.
func TestFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	st, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "s"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "s/index.jsonl")); err != nil {
		t.Fatal(err)
	}
	f, err := st.OpenAppend(t.Context(), "s/index.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = f.Append(t.Context(), []byte("line\n"))
	if !errors.Is(err, store.ErrFull) || !strings.Contains(err.Error(), "no space") {
		t.Errorf("append to a full device: %v, want ErrFull", err)
	}
}

// Package storetest tests archive stores: Conformance runs the contract
// of store.Store (and store.Appender) against an implementation, and
// Faulty wraps a store to make its writes fail or hang until released.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/golivestream/live/archive/store"
)

// Conformance runs the store.Store contract against st, which must be
// empty. It calls t.Run for each part.
func Conformance(t *testing.T, st store.Store) {
	ctx := t.Context()
	body := []byte("0123456789")
	put := func(t *testing.T, key string, b []byte) {
		t.Helper()
		if err := st.Put(ctx, key, b); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}

	t.Run("get", func(t *testing.T) {
		put(t, "g/obj.bin", body)
		tests := []struct {
			name   string
			off, n int64
			want   string
			err    error
		}{
			{"whole", 0, -1, "0123456789", nil},
			{"head", 0, 3, "012", nil},
			{"middle", 4, 2, "45", nil},
			{"tail", 7, -1, "789", nil},
			{"cut at end", 8, 100, "89", nil},
			{"at end", 10, -1, "", nil},
			{"past end", 11, -1, "", store.ErrRange},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := st.Get(ctx, "g/obj.bin", tc.off, tc.n)
				if !errors.Is(err, tc.err) {
					t.Fatalf("Get(%d, %d) error %v, want %v", tc.off, tc.n, err, tc.err)
				}
				if err == nil && string(got) != tc.want {
					t.Errorf("Get(%d, %d) = %q, want %q", tc.off, tc.n, got, tc.want)
				}
			})
		}
		if _, err := st.Get(ctx, "g/missing.bin", 0, -1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing object: %v, want ErrNotFound", err)
		}
	})

	t.Run("put replaces", func(t *testing.T) {
		put(t, "r/obj", []byte("first version"))
		put(t, "r/obj", []byte("second"))
		got, err := st.Get(ctx, "r/obj", 0, -1)
		if err != nil || string(got) != "second" {
			t.Errorf("after replace: %q, %v", got, err)
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"l/a/1", "l/a/2", "l/b.json", "l/b/x", "l/c"} {
			put(t, "l/"+k[2:], []byte(k))
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"l/", []string{"l/a/", "l/b.json", "l/b/", "l/c"}},
			{"l/a/", []string{"l/a/1", "l/a/2"}},
			{"l/none/", nil},
		}
		for _, tc := range tests {
			es, err := st.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			var keys []string
			for _, e := range es {
				keys = append(keys, e.Key)
				if e.Dir != (e.Key[len(e.Key)-1] == '/') {
					t.Errorf("List(%q): %+v: Dir and trailing slash disagree", tc.prefix, e)
				}
				if !e.Dir && e.Size != int64(len(e.Key)) {
					t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, e.Key, e.Size, len(e.Key))
				}
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, keys, tc.want)
			}
		}
		es, err := st.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(es, func(e store.Entry) bool { return e.Key == "l/" && e.Dir }) {
			t.Errorf("List(\"\") = %+v: no l/", es)
		}
	})

	t.Run("delete prefix", func(t *testing.T) {
		for _, k := range []string{"d/x/1", "d/x/sub/2", "d/xy/3", "d/x.json"} {
			put(t, k, []byte(k))
		}
		if err := st.DeletePrefix(ctx, "d/x/"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"d/x/1", "d/x/sub/2"} {
			if _, err := st.Get(ctx, k, 0, -1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s after delete: %v", k, err)
			}
		}
		for _, k := range []string{"d/xy/3", "d/x.json"} {
			if got, err := st.Get(ctx, k, 0, -1); err != nil || string(got) != k {
				t.Errorf("%s, a neighbour, after delete: %q %v", k, got, err)
			}
		}
		if err := st.DeletePrefix(ctx, "d/none/"); err != nil {
			t.Errorf("deleting nothing: %v", err)
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "a/../b", "a//b", ".hidden", "a/.tmp-1", "a b", "a/"} {
			if err := st.Put(ctx, k, body); !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("Put(%q): %v, want ErrInvalidKey", k, err)
			}
			if _, err := st.Get(ctx, k, 0, -1); !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("Get(%q): %v, want ErrInvalidKey", k, err)
			}
		}
		for _, p := range []string{"", "a", "../", "a/../"} {
			if err := st.DeletePrefix(ctx, p); !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("DeletePrefix(%q): %v, want ErrInvalidKey", p, err)
			}
		}
	})

	t.Run("concurrent puts", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				k := fmt.Sprintf("c/%d", i)
				if err := st.Put(ctx, k, bytes.Repeat([]byte{byte(i)}, 1000+i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		es, err := st.List(ctx, "c/")
		if err != nil || len(es) != 16 {
			t.Errorf("listed %d objects, %v", len(es), err)
		}
	})

	if ap, ok := st.(store.Appender); ok {
		t.Run("append", func(t *testing.T) {
			// Appends through two handles in turn: the second continues
			// where the first ended; a sync makes them durable (the
			// second time, the store's SyncAll when it has one).
			want := ""
			for i, lines := range [][]string{{"one\n", "two\n"}, {"three\n"}} {
				f, err := ap.OpenAppend(ctx, "a/new/log")
				if err != nil {
					t.Fatal(err)
				}
				if f.Size() != int64(len(want)) {
					t.Errorf("opened at size %d, want %d", f.Size(), len(want))
				}
				for _, s := range lines {
					if err := f.Append(ctx, []byte(s)); err != nil {
						t.Fatal(err)
					}
					want += s
				}
				sync := f.Sync
				if all, ok := st.(store.SyncAller); ok && i == 1 {
					sync = all.SyncAll
				}
				if err := sync(ctx); err != nil {
					t.Fatal(err)
				}
				if f.Size() != int64(len(want)) {
					t.Errorf("size %d after appends, want %d", f.Size(), len(want))
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := st.Get(ctx, "a/new/log", 0, -1)
			if err != nil || string(got) != want {
				t.Errorf("appended: %q, %v", got, err)
			}
		})
	}
}

package protection

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testSecret = bytes.Repeat([]byte{0x5a}, 32)

// TestStoreDerives: a period's key is issued once, stays the same, and is
// the same in another Store with the same secret; periods, epochs and
// streams get different keys; KIDs are version 8 UUIDs.
func TestStoreDerives(t *testing.T) {
	ctx := context.Background()
	a, err := NewStore(StoreConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewStore(StoreConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[KID]Period{}
	for _, p := range []Period{
		{"cam", "1", 0}, {"cam", "1", 1}, {"cam", "2", 0}, {"cam2", "1", 0}, {"ca", "m1", 0},
	} {
		k1, err := a.Key(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := a.Key(ctx, p)
		k2, _ := b.Key(ctx, p)
		if k1.KID != again.KID || k1.Value != again.Value || k1.KID != k2.KID || k1.Value != k2.Value || k1.IV != k2.IV {
			t.Errorf("%v: keys differ", p)
		}
		if q, dup := seen[k1.KID]; dup {
			t.Errorf("%v and %v share KID %s", p, q, k1.KID)
		}
		seen[k1.KID] = p
		if k1.KID[6]>>4 != 8 || k1.KID[8]>>6 != 2 {
			t.Errorf("KID %s is not a version 8 UUID", k1.KID)
		}
		if k1.Value == k1.IV || k1.Value == ([16]byte{}) {
			t.Errorf("%v: degenerate key", p)
		}
	}
	c, err := NewStore(StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := c.Key(ctx, Period{"cam", "1", 0})
	ka, _ := a.Key(ctx, Period{"cam", "1", 0})
	if kc.KID == ka.KID {
		t.Error("a random secret gives the keys of the test secret")
	}
	if _, err := NewStore(StoreConfig{Secret: []byte("short")}); err == nil {
		t.Error("short secret accepted")
	}
}

// TestStoreLookup: a KID is found only for the stream it was issued for,
// and not after Forget.
func TestStoreLookup(t *testing.T) {
	ctx := context.Background()
	s, _ := NewStore(StoreConfig{Secret: testSecret})
	k, _ := s.Key(ctx, Period{"cam", "1", 3})
	if got, err := s.Lookup(ctx, "cam", k.KID); err != nil || got.Value != k.Value {
		t.Fatalf("Lookup: %v", err)
	}
	if _, err := s.Lookup(ctx, "other", k.KID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another stream's key: %v", err)
	}
	if _, err := s.Lookup(ctx, "cam", testKey.KID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown KID: %v", err)
	}
	s.Forget("cam", "2")
	if _, err := s.Lookup(ctx, "cam", k.KID); err != nil {
		t.Errorf("Forget of another epoch dropped the key: %v", err)
	}
	s.Forget("cam", "1")
	if _, err := s.Lookup(ctx, "cam", k.KID); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after Forget: %v", err)
	}
}

// TestStoreExport: a store imported from an export finds the keys issued
// before it and derives the same keys after; fetched keys travel with
// their values.
func TestStoreExport(t *testing.T) {
	ctx := context.Background()
	for _, fetched := range []bool{false, true} {
		cfg := StoreConfig{}
		if fetched {
			cfg.Fetch = func(_ context.Context, _ Period, kid KID) (Key, error) {
				k := testKey
				k.KID = kid
				k.Systems = []System{{ID: SystemFairPlay, HLSURI: "skd://" + kid.Hex()}}
				return k, nil
			}
		}
		a, err := NewStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		k1, _ := a.Key(ctx, Period{"cam", "1", 0})
		data, err := a.Export()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Fetch = nil // the backup has no key server: keys come from the export
		b, err := ImportStore(data, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Lookup(ctx, "cam", k1.KID)
		if err != nil || got.Value != k1.Value || got.IV != k1.IV || len(got.Systems) != len(k1.Systems) {
			t.Fatalf("fetched %v: imported key %+v, %v; want %+v", fetched, got, err, k1)
		}
		if !fetched {
			k2, _ := a.Key(ctx, Period{"cam", "1", 1})
			b2, _ := b.Key(ctx, Period{"cam", "1", 1})
			if k2.KID != b2.KID || k2.Value != b2.Value {
				t.Error("later period differs after import")
			}
		}
	}
	if _, err := ImportStore([]byte(`{"secret":"AAAA"}`), StoreConfig{}); err == nil {
		t.Error("short secret imported")
	}
	bad := []byte(`{"secret":"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=","periods":[{"stream":"s","epoch":"1","number":0,"kid":"00000000-0000-0000-0000-000000000000"}]}`)
	if _, err := ImportStore(bad, StoreConfig{}); err == nil {
		t.Error("foreign KID imported")
	}
}

// TestStoreFetchCoalesces: concurrent first requests for a period make one
// key server request, which outlives a caller that gives up.
func TestStoreFetchCoalesces(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	s, err := NewStore(StoreConfig{
		Secret: testSecret,
		Fetch: func(ctx context.Context, p Period, kid KID) (Key, error) {
			calls.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return Key{}, ctx.Err()
			}
			k := testKey2
			k.KID = kid
			k.IV = [16]byte{}
			return k, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := Period{"cam", "1", 0}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Key(gone, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	var wg sync.WaitGroup
	keys := make([]Key, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if keys[i], err = s.Key(context.Background(), p); err != nil {
				t.Error(err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d key server requests, want 1", n)
	}
	for _, k := range keys {
		if k.Value != testKey2.Value || k.IV == ([16]byte{}) || k.KID != keys[0].KID {
			t.Fatalf("key %+v", k)
		}
	}
}

// TestStoreFetchTimeout: a key server that does not answer fails the
// request after FetchTimeout.
func TestStoreFetchTimeout(t *testing.T) {
	s, _ := NewStore(StoreConfig{
		Secret:       testSecret,
		FetchTimeout: 10 * time.Millisecond,
		Fetch: func(ctx context.Context, _ Period, _ KID) (Key, error) {
			<-ctx.Done()
			return Key{}, ctx.Err()
		},
	})
	if _, err := s.Key(context.Background(), Period{"cam", "1", 0}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want deadline exceeded", err)
	}
}

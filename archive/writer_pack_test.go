package archive

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golivestream/live/archive/store"
)

// durability wraps a store that can append and keeps, for each appended
// object, the size up to which it was synced: what a crash of the
// machine keeps at worst. At each append to an index it checks the rule
// the archive's crash guarantee rests on: every line appended (which may
// reach the disk at any moment from then on) names pack bytes that are
// synced already.
type durability struct {
	store.Store
	ap store.Appender

	mu sync.Mutex // guards the fields below
	// size and synced are each appended object's size and durable size.
	size, synced map[string]int64
	// broken lists the violations of the rule.
	broken []string
	// syncAlls counts the calls of SyncAll (durabilityAll).
	syncAlls int
	// appends counts the appends to each object.
	appends map[string]int
}

func newDurability(st store.Store) *durability {
	return &durability{Store: st, ap: st.(store.Appender), size: map[string]int64{}, synced: map[string]int64{}, appends: map[string]int{}}
}

// durabilityAll is a durability store that can also sync everything at
// once (store.SyncAller), as the store it wraps does.
type durabilityAll struct{ *durability }

func (d durabilityAll) SyncAll(ctx context.Context) error {
	d.mu.Lock()
	d.syncAlls++
	sizes := maps.Clone(d.size) // appended before this sync began
	d.mu.Unlock()
	if err := d.Store.(store.SyncAller).SyncAll(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, size := range sizes {
		d.synced[key] = max(d.synced[key], size)
	}
	return nil
}

func (d *durability) OpenAppend(ctx context.Context, key string) (store.AppendFile, error) {
	f, err := d.ap.OpenAppend(ctx, key)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.size[key] = f.Size()
	d.mu.Unlock()
	return &durableFile{AppendFile: f, d: d, key: key}, nil
}

// durableFile is an object of a durability store open for appending.
type durableFile struct {
	store.AppendFile
	d   *durability
	key string
}

func (f *durableFile) Append(ctx context.Context, data []byte) error {
	prefix, isIndex := strings.CutSuffix(f.key, indexName)
	if isIndex {
		f.d.mu.Lock()
		packSynced := f.d.synced[prefix+packName]
		for line := range bytes.Lines(data) {
			e, err := ParseEntry(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil || !e.Packed {
				continue
			}
			if e.Offset+e.Size > packSynced {
				f.d.broken = append(f.d.broken, fmt.Sprintf("%s names pack bytes %d to %d, synced to %d",
					e.Name(), e.Offset, e.Offset+e.Size, packSynced))
			}
		}
		f.d.mu.Unlock()
	}
	if err := f.AppendFile.Append(ctx, data); err != nil {
		return err
	}
	f.d.mu.Lock()
	f.d.size[f.key] = f.Size()
	f.d.appends[f.key]++
	f.d.mu.Unlock()
	return nil
}

func (f *durableFile) Sync(ctx context.Context) error {
	f.d.mu.Lock()
	size := f.d.size[f.key] // appended before this sync began
	f.d.mu.Unlock()
	if err := f.AppendFile.Sync(ctx); err != nil {
		return err
	}
	f.d.mu.Lock()
	f.d.synced[f.key] = max(f.d.synced[f.key], size)
	f.d.mu.Unlock()
	return nil
}

// TestIndexNamesDurableBytes writes epochs side by side and checks that
// no index line ever reaches the index before the pack bytes it names
// are synced, and that once Flush returns every pack and index is
// synced whole: what Flush waited for survives a crash of the machine.
// It does so with a store that syncs each file (store.AppendFile.Sync)
// and with one that syncs them all at once (store.SyncAller).
func TestIndexNamesDurableBytes(t *testing.T) {
	for _, tc := range []struct {
		delay   time.Duration
		syncAll bool
	}{{-1, false}, {20 * time.Millisecond, false}, {-1, true}, {20 * time.Millisecond, true}} {
		t.Run(fmt.Sprintf("delay=%v/syncall=%v", tc.delay, tc.syncAll), func(t *testing.T) {
			d := newDurability(newDirStore(t))
			var st store.Store = d
			if tc.syncAll {
				st = durabilityAll{d}
			}
			w, err := NewWriter(WriterConfig{Store: st, CommitDelay: tc.delay, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w)
			var fs []*fakeEpoch
			var eps []*Epoch
			for i := range 4 {
				f := makeEpoch(fmt.Sprintf("d%d", i), "m1", 12, epochStart)
				eps = append(eps, f.write(t, w, time.Time{}))
				fs = append(fs, f)
			}
			// More of each, in rounds, with a Flush now and then.
			for round := range 6 {
				for i, f := range fs {
					more := makeEpoch(f.stream, f.epoch, 12+2*(round+1), epochStart).segs[len(f.segs):]
					for _, s := range more {
						if err := eps[i].Segment(s); err != nil {
							t.Fatal(err)
						}
					}
					f.segs = append(f.segs, more...)
				}
				if round%2 == 1 {
					flush(t, w)
					d.checkSynced(t)
				}
			}
			flush(t, w)
			d.checkSynced(t)
			for _, f := range fs {
				f.check(t, d, time.Time{})
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, b := range d.broken {
				t.Error(b)
			}
			if tc.syncAll && d.syncAlls == 0 {
				t.Error("the store's SyncAll was never called")
			}
		})
	}
}

// checkSynced fails t unless every appended object is synced whole.
func (d *durability) checkSynced(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, size := range d.size {
		if d.synced[key] != size {
			t.Errorf("after Flush, %s is synced to %d of %d bytes", key, d.synced[key], size)
		}
	}
}

// TestCommitGathers queues segments of one epoch that together pass
// maxGather: the committer appends them in as few writes as the bound
// allows, each at the offset its line gives, byte for byte.
func TestCommitGathers(t *testing.T) {
	d := newDurability(newDirStore(t))
	w, err := NewWriter(WriterConfig{Store: durabilityAll{d}, CommitDelay: time.Hour, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	f := makeEpoch("gather", "m1", 0, epochStart)
	f.renditions = f.renditions[1:] // v0
	ep := f.write(t, w, time.Time{})
	flush(t, w)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 5 { // 7.5 MB: 3, 3 and 1.5 MB under a bound of 4
		data := make([]byte, 1_500_000)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		s := Segment{Rendition: "v0", Number: uint64(i), Start: int64(i) * 90000, Duration: 90000, Timescale: 90000, Wall: epochStart.Add(time.Duration(i) * time.Second), Data: data}
		if err := ep.Segment(s); err != nil {
			t.Fatal(err)
		}
		f.segs = append(f.segs, s)
	}
	flush(t, w)
	f.check(t, d, time.Time{})
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.appends[EpochPrefix(f.stream, f.epoch)+packName]; n != 3 {
		t.Errorf("the 5 segments took %d appends to the pack, want 3", n)
	}
}

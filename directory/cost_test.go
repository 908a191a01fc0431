package directory

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golivestream/live/directory/etcdtest"
)

// The directory's cost: the requests etcd gets with 1000 streams on 10
// origins (each stream on two) and 20 views, in steady state, while the
// origins advance every stream's newest segment each second and the
// views answer lookups as fast as they can. The views' requests do not
// depend on lookups: they send no read at all.
func TestDirectoryCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for 15 s")
	}
	const (
		origins, views, streams = 10, 20, 1000
		window                  = 15 * time.Second
	)
	etcd := etcdtest.Start(t, etcdtest.Config{})
	originCount, viewCount := etcdtest.NewCounter(), etcdtest.NewCounter()

	var bps atomic.Int64 // the load changes every time it is measured
	regs := make([]*Registration, origins)
	for i := range regs {
		regs[i] = runRegistration(t, RegistrationConfig{
			Client: etcd.Client(originCount.DialOptions()...),
			ID:     fmt.Sprintf("o%d", i),
			Zone:   fmt.Sprintf("z%d", i%5),
			Load:   func() Load { return Load{Streams: 200, IngestBPS: float64(bps.Add(1000))} },
		})
	}
	vs := make([]*View, views)
	for i := range vs {
		vs[i] = runView(t, ViewConfig{Client: etcd.Client(viewCount.DialOptions()...)})
	}
	segment := uint64(1)
	setAll := func() {
		for s := range streams {
			name := fmt.Sprintf("s%d", s)
			mustSet(t, regs[s%origins], name, StreamState{Epoch: "e1", Role: RolePrimary, NewestSegment: segment})
			mustSet(t, regs[(s+1)%origins], name, StreamState{Epoch: "e1", Role: RoleBackup, NewestSegment: segment})
		}
	}
	setAll()
	for _, v := range vs {
		awaitView(t, v, "listed every stream", func(s *Snapshot) bool {
			if s.Streams() != streams {
				return false
			}
			_, b, _ := s.Lookup(fmt.Sprintf("s%d", streams-1))
			return b.ID != ""
		})
	}

	// Steady state.
	originCount.Take()
	viewCount.Take()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			names := make([]string, streams)
			for i := range names {
				names[i] = fmt.Sprintf("s%d", i)
			}
			n := int64(0)
			for {
				for range 1000 {
					if _, _, ok := vs[rng.IntN(views)].Lookup(names[rng.IntN(streams)]); !ok {
						t.Error("lookup failed")
						return
					}
				}
				n += 1000
				select {
				case <-stop:
					lookups.Add(n)
					return
				default:
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second)
	end := time.After(window)
	began := time.Now()
measure:
	for {
		select {
		case <-tick.C:
			segment++
			setAll()
		case <-end:
			break measure
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	elapsed := time.Since(began).Seconds()
	oSent, _ := originCount.Take()
	vSent, vRecv := viewCount.Take()

	report := func(who string, m map[string]int) float64 {
		total := 0
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			total += m[k]
			parts = append(parts, fmt.Sprintf("%s %.2f/s", k[strings.LastIndex(k, "/")+1:], float64(m[k])/elapsed))
		}
		rate := float64(total) / elapsed
		t.Logf("%s: %.1f requests/s (%s)", who, rate, strings.Join(parts, ", "))
		return rate
	}
	t.Logf("%d streams on %d origins, %d views, %.1f s: %d lookups (%.0f/s), %d SetStream calls/s",
		streams, origins, views, elapsed, lookups.Load(), float64(lookups.Load())/elapsed, 2*streams)
	or := report("origins, sent", oSent)
	vr := report("views, sent", vSent)
	report("views, received", vRecv)
	t.Logf("etcd requests in all: %.1f/s", or+vr)

	// Per origin: a keep-alive every TTL/3 and a load write every
	// LoadInterval, with the segments of its 200 streams every
	// SegmentInterval in batches of 99: under 1.5/s. Per view: a
	// progress request every ProgressInterval.
	if or > 1.5*origins {
		t.Errorf("origins sent %.1f requests/s", or)
	}
	if vr > 0.3*views {
		t.Errorf("views sent %.1f requests/s", vr)
	}
	for k := range vSent {
		if strings.HasSuffix(k, "/Range") || strings.HasSuffix(k, "/Txn") {
			t.Errorf("views read etcd in steady state: %s", k)
		}
	}
}

package archive

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkLiveCPU archives 10 streams in real time, as the origin
// queues them, beside a stand-in for the rest of a live origin, and
// compares with the same stand-in archiving nothing: the archive's own
// cost, in CPU and in waits, with the Go scheduler's share of it. Each
// stream is a goroutine woken 30 times a second (a video frame); at each
// second's end it makes a 325 kB video segment (a second of 2.6 Mb/s,
// every byte written) and queues it, and a 16 kB audio one 65 ms later.
// The streams' seconds are spread over the second, and each stream keeps
// its last 61 s of segments, as the origin's window does (the heap in
// its steady state from the start). One op is one second of the 10
// streams.
//
// cpu-ms/s is the process's CPU (user and system, getrusage: the
// writeback of a sync counts) per second; waits/s its threads'
// voluntary context switches per second (a wait for the disk, a wake-up
// of a parked thread), which cost the most on the benchmark's virtual
// machine; late-p99-µs the 99th percentile of how late a frame's
// goroutine ran. The difference between archive=fsync (or nosync) and
// archive=off is the archive's cost; bench/archive/run.sh measures it
// against a real origin's ingest.
//
//	go test -run '^$' -bench LiveCPU -benchtime 20x -count 3 ./archive
func BenchmarkLiveCPU(b *testing.B) {
	const streams = 10
	video, audio := make([]byte, 325_000), make([]byte, 16_000)
	for i := range video {
		video[i] = byte(i * 131)
	}
	copy(audio, video)
	for _, mode := range []string{"off", "fsync", "nosync"} {
		b.Run("archive="+mode, func(b *testing.B) {
			var eps []*Epoch
			if mode != "off" {
				w := newBenchWriter(b, mode == "nosync", prometheus.NewRegistry())
				for i := range streams {
					ep, err := w.Begin(fmt.Sprintf("s%d", i), "m1", time.Time{})
					if err != nil {
						b.Fatal(err)
					}
					for _, id := range []string{"v0", "a0"} {
						if err := ep.Init(Init{Rendition: Rendition{ID: id}, Data: video[:700]}); err != nil {
							b.Fatal(err)
						}
					}
					eps = append(eps, ep)
				}
				flush(b, w)
			}
			windows := make([][61][2][]byte, streams)
			for i := range windows {
				for n := range windows[i] {
					windows[i][n] = [2][]byte{slices.Clone(video), slices.Clone(audio)}
				}
			}
			runtime.GC()

			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			var (
				mu   sync.Mutex // guards late
				late []time.Duration
				wg   sync.WaitGroup
			)
			start := time.Now().Add(50 * time.Millisecond)
			cpu0, waits0 := usage(b)
			b.ResetTimer()
			for i := range streams {
				wg.Go(func() {
					lates := make([]time.Duration, 0, 30*b.N)
					var audioTimer *time.Timer
					t0 := start.Add(time.Duration(i) * time.Second / streams)
					for f := range 30 * b.N {
						due := t0.Add(time.Duration(f) * time.Second / 30)
						t := time.NewTimer(time.Until(due))
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
						lates = append(lates, time.Since(due))
						if f%30 != 29 {
							continue
						}
						n := uint64(f / 30)
						v, a := slices.Clone(video), slices.Clone(audio)
						v[0], a[0] = byte(n), byte(n)
						windows[i][n%61] = [2][]byte{v, a}
						if eps == nil {
							continue
						}
						if err := eps[i].Segment(Segment{Rendition: "v0", Number: n, Duration: 90000, Timescale: 90000, Data: v}); err != nil {
							b.Error(err)
						}
						audioTimer = time.AfterFunc(65*time.Millisecond, func() {
							if err := eps[i].Segment(Segment{Rendition: "a0", Number: n, Duration: 48000, Timescale: 48000, Data: a}); err != nil {
								b.Error(err)
							}
						})
					}
					if audioTimer != nil {
						audioTimer.Stop()
					}
					mu.Lock()
					late = append(late, lates...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			cpu1, waits1 := usage(b)
			b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/elapsed, "cpu-ms/s")
			b.ReportMetric(float64(waits1-waits0)/elapsed, "waits/s")
			slices.Sort(late)
			if len(late) > 0 {
				b.ReportMetric(float64(late[len(late)*99/100].Microseconds()), "late-p99-µs")
			}
		})
	}
}

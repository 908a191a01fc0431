package archive

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive/dirstore"
)

// BenchmarkEnqueue measures the origin's cost of archiving a segment:
// Epoch.Segment with the queue filling up and then dropping its oldest
// (no Run: nothing is written), serial and from parallel streams.
func BenchmarkEnqueue(b *testing.B) {
	data := make([]byte, 325_000) // 1 s at 2.6 Mb/s, shared, never copied
	for _, parallel := range []bool{false, true} {
		b.Run(map[bool]string{false: "serial", true: "parallel"}[parallel], func(b *testing.B) {
			w, err := NewWriter(WriterConfig{Store: newDirStore(b), Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			ep, err := w.Begin("bench", "m1", time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			seg := Segment{Rendition: "v0", Duration: 90000, Timescale: 90000, Wall: time.Now(), Data: data}
			b.ReportAllocs()
			if !parallel {
				for i := range b.N {
					seg.Number = uint64(i)
					if err := ep.Segment(seg); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				s := seg
				for pb.Next() {
					s.Number++
					if err := ep.Segment(s); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// ladder is the renditions of one benchmark stream and their bit rates:
// the 2.6 Mb/s source and a ladder under it.
var ladder = []struct {
	id   string
	rate int // bits per second
}{{"v0", 2_600_000}, {"v1", 1_200_000}, {"v2", 600_000}, {"a0", 128_000}}

// BenchmarkDirThroughput archives 20 streams of 1-second segments (the
// ladder above: 4.5 Mb/s a stream, 80 segments and 11.3 MB a second in
// all) to a directory store, with the writer's defaults. One op is one
// second of all 20 streams, enqueued and flushed; x-realtime is the
// seconds of streams archived per second (it must stay above 1), MB/s
// the bytes written per second.
func BenchmarkDirThroughput(b *testing.B) {
	const streams = 20
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			w := newBenchWriter(b, noSync, reg)
			var perSecond int64
			data := map[string][]byte{}
			for _, r := range ladder {
				data[r.id] = make([]byte, r.rate/8)
				perSecond += int64(r.rate/8) * streams
			}
			eps := make([]*Epoch, streams)
			for i := range eps {
				var err error
				if eps[i], err = w.Begin(fmt.Sprintf("s%d", i), "m1", time.Time{}); err != nil {
					b.Fatal(err)
				}
				for _, r := range ladder {
					if err := eps[i].Init(Init{Rendition: Rendition{ID: r.id, Bandwidth: r.rate}, Data: data[r.id][:700]}); err != nil {
						b.Fatal(err)
					}
				}
			}
			flush(b, w)
			b.SetBytes(perSecond)
			b.ResetTimer()
			for n := range b.N {
				for _, ep := range eps {
					for _, r := range ladder {
						err := ep.Segment(Segment{Rendition: r.id, Number: uint64(n), Start: int64(n) * 90000,
							Duration: 90000, Timescale: 90000, Data: data[r.id]})
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				flush(b, w)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "x-realtime")
			if d := metric(b, reg, "archive_dropped_total", "kind", "segment"); d > 0 {
				b.Errorf("%v segments dropped", d)
			}
		})
	}
}

// BenchmarkSegmentCPU measures what archiving one segment costs the
// process in CPU time (user and system, from getrusage: the fsyncs'
// writeback is charged to the process that asks for it), the figure
// bench/archive/run.sh compares with live ingest. Segments alternate
// between a 2.6 Mb/s video rendition and a 128 kb/s audio one (1-second
// segments, 170 kB on average, as in bench/ingest). batch is how many
// segments are enqueued before waiting for them to be written: 1 is a
// lone stream (nothing to group), 20 the segments of 10 streams ending
// together.
func BenchmarkSegmentCPU(b *testing.B) {
	video, audio := make([]byte, 2_600_000/8), make([]byte, 128_000/8)
	for _, batch := range []int{1, 20} {
		for _, noSync := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/nosync=%v", batch, noSync), func(b *testing.B) {
				w := newBenchWriter(b, noSync, prometheus.NewRegistry())
				ep, err := w.Begin("bench", "m1", time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				for _, id := range []string{"v0", "a0"} {
					if err := ep.Init(Init{Rendition: Rendition{ID: id}, Data: audio[:700]}); err != nil {
						b.Fatal(err)
					}
				}
				flush(b, w)
				before := cpuTime(b)
				b.ResetTimer()
				for n := 0; n < b.N; {
					for i := 0; i < batch && n < b.N; i, n = i+1, n+1 {
						s := Segment{Rendition: "v0", Number: uint64(n / 2), Duration: 90000, Timescale: 90000, Data: video}
						if n%2 == 1 {
							s.Rendition, s.Duration, s.Timescale, s.Data = "a0", 48000, 48000, audio
						}
						if err := ep.Segment(s); err != nil {
							b.Fatal(err)
						}
					}
					flush(b, w)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime(b)-before)/float64(time.Microsecond)/float64(b.N), "cpu-µs/seg")
			})
		}
	}
}

// newBenchWriter returns a Writer with the default configuration on a
// directory store in a temporary directory, running until b ends.
func newBenchWriter(b *testing.B, noSync bool, reg prometheus.Registerer) *Writer {
	st, err := dirstore.New(dirstore.Config{Dir: b.TempDir(), NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w, err := NewWriter(WriterConfig{Store: st, Logger: discard, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	runWriter(b, w)
	return w
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	cpu, _ := usage(b)
	return cpu
}

// usage returns the CPU time (user and system) the process used so far
// and the context switches its threads made waiting (voluntary ones:
// for a device, a lock, a wake-up).
func usage(b *testing.B) (cpu time.Duration, waits int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw
}

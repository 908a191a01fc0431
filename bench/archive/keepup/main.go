// Command keepup is the keep-up phase of the archive benchmark
// (bench/archive/run.sh): it archives, in real time, what -streams
// streams of a 2.5 Mb/s 720p source with the default transcoding ladder
// (720p 2.5 Mb/s, 480p 1 Mb/s, 240p 400 kb/s) and 128 kb/s audio queue,
// 1-second segments, to a directory on this machine's disk, through the
// archive's Writer as the origin uses it (fsync on, the default queue
// and workers), and reports whether it keeps up: segments dropped, the
// queue's depth, write latency, and how long the queue takes to drain
// at the end. Then it measures the headroom: the same streams enqueued
// as fast as the writer writes them (x real time).
//
//	keepup -dir DIR [-streams 20] [-seconds 60] [-headroom 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/dirstore"
)

// rendition is one rendition of a benchmark stream and its bit rate.
type rendition struct {
	id   string
	rate int // bits per second
}

// ladder is a 2.5 Mb/s 720p source with the default ladder
// (transcode's 720p:2500k,480p:1M,240p:400k) and AAC audio.
var ladder = []rendition{{"v0", 2_500_000}, {"v1", 2_500_000}, {"v2", 1_000_000}, {"v3", 400_000}, {"a0", 128_000}}

func main() {
	dir := flag.String("dir", "", "directory of the archive (emptied first); on the disk to measure")
	streams := flag.Int("streams", 20, "streams archived at once")
	seconds := flag.Int("seconds", 60, "seconds of real-time streams")
	headroom := flag.Int("headroom", 20, "seconds of streams enqueued as fast as they are written, after (0: none)")
	flag.Parse()
	if *dir == "" || *streams < 1 || *seconds < 1 {
		fmt.Fprintln(os.Stderr, "keepup: -dir is required; -streams and -seconds must be positive")
		os.Exit(2)
	}
	if err := run(*dir, *streams, *seconds, *headroom); err != nil {
		fmt.Fprintln(os.Stderr, "keepup:", err)
		os.Exit(1)
	}
}

func run(dir string, streams, seconds, headroom int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st, err := dirstore.New(dirstore.Config{Dir: dir})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	w, err := archive.NewWriter(archive.WriterConfig{Store: st, Registerer: reg})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	data := map[string][]byte{}
	var perSecond int
	for _, r := range ladder {
		b := make([]byte, r.rate/8)
		for i := range b {
			b[i] = byte(i * 131)
		}
		data[r.id] = b
		perSecond += len(b) * streams
	}
	eps := make([]*archive.Epoch, streams)
	for i := range eps {
		if eps[i], err = w.Begin(fmt.Sprintf("s%d", i), "m1", time.Time{}); err != nil {
			return err
		}
		for _, r := range ladder {
			if err := eps[i].Init(archive.Init{Rendition: archive.Rendition{ID: r.id, Bandwidth: r.rate, Timescale: 90000}, Data: data[r.id][:800]}); err != nil {
				return err
			}
		}
	}
	enqueue := func(n int) error {
		for _, ep := range eps {
			for _, r := range ladder {
				err := ep.Segment(archive.Segment{Rendition: r.id, Number: uint64(n), Start: int64(n) * 90000,
					Duration: 90000, Timescale: 90000, Data: data[r.id]})
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	fmt.Printf("keep-up: %d streams x (%s), %.1f MB and %d segments a second, to %s (fsync on), for %d s in real time\n",
		streams, describe(ladder), float64(perSecond)/1e6, streams*len(ladder), dir, seconds)

	// Real time: one second of every stream each second; the queue's
	// depth sampled just before each second's segments.
	var depths []float64
	start := time.Now()
	tick := time.NewTicker(time.Second)
	for n := range seconds {
		if n > 0 {
			<-tick.C
			depths = append(depths, gauge(reg, "archive_queue_depth"))
		}
		if err := enqueue(n); err != nil {
			return err
		}
	}
	tick.Stop()
	enqueued := time.Now()
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = w.Flush(fctx)
	fcancel()
	if err != nil {
		return err
	}
	drain := time.Since(enqueued)
	sort.Float64s(depths)
	p50, p99 := histQuantile(reg, "archive_write_seconds", "segment", 0.5), histQuantile(reg, "archive_write_seconds", "segment", 0.99)
	fmt.Printf("  written: %.0f segments, %.1f MB (%.1f MB/s over %.1f s)\n", counter(reg, "archive_written_total", "segment"),
		counter(reg, "archive_written_bytes_total", "segment")/1e6, counter(reg, "archive_written_bytes_total", "segment")/1e6/time.Since(start).Seconds(), time.Since(start).Seconds())
	fmt.Printf("  dropped: %.0f; failed writes: %.0f\n", counter(reg, "archive_dropped_total", ""), counter(reg, "archive_write_errors_total", ""))
	fmt.Printf("  queue depth before each second's segments (items, of %d enqueued a second): median %.0f, max %.0f\n", streams*len(ladder), pick(depths, 0.5), pick(depths, 1))
	fmt.Printf("  segment write latency: p50 %.1f ms, p99 %.1f ms\n", p50*1000, p99*1000)
	fmt.Printf("  queue drained %.0f ms after the last second's segments\n", float64(drain.Milliseconds()))
	keptUp := counter(reg, "archive_dropped_total", "") == 0 && drain < time.Second
	fmt.Printf("  keeps up: %v (nothing dropped, the last second written within a second)\n", keptUp)

	if headroom > 0 {
		hstart := time.Now()
		for n := seconds; n < seconds+headroom; n++ {
			if err := enqueue(n); err != nil {
				return err
			}
			fctx, fcancel := context.WithTimeout(context.Background(), time.Minute)
			err := w.Flush(fctx)
			fcancel()
			if err != nil {
				return err
			}
		}
		fmt.Printf("  headroom: %d s of the %d streams written in %.1f s: %.2fx real time\n",
			headroom, streams, time.Since(hstart).Seconds(), float64(headroom)/time.Since(hstart).Seconds())
	}
	return nil
}

// describe lists the ladder's renditions and rates.
func describe(l []rendition) string {
	s := ""
	for i, r := range l {
		if i > 0 {
			s += " + "
		}
		s += fmt.Sprintf("%s %.3g Mb/s", r.id, float64(r.rate)/1e6)
	}
	return s
}

// pick returns the q quantile of sorted values (0 for none).
func pick(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(math.Min(float64(len(sorted)-1), q*float64(len(sorted))))]
}

// families returns the metric family name of reg.
func family(reg *prometheus.Registry, name string) *dto.MetricFamily {
	mfs, err := reg.Gather()
	if err != nil {
		return nil
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// labeled reports whether m has label kind=kind (any when kind is "").
func labeled(m *dto.Metric, kind string) bool {
	if kind == "" {
		return true
	}
	for _, l := range m.GetLabel() {
		if l.GetName() == "kind" && l.GetValue() == kind {
			return true
		}
	}
	return false
}

// counter sums the counter name over the samples labelled kind.
func counter(reg *prometheus.Registry, name, kind string) float64 {
	var sum float64
	if mf := family(reg, name); mf != nil {
		for _, m := range mf.GetMetric() {
			if labeled(m, kind) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// gauge returns the gauge name.
func gauge(reg *prometheus.Registry, name string) float64 {
	if mf := family(reg, name); mf != nil && len(mf.GetMetric()) > 0 {
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	return 0
}

// histQuantile returns the q quantile of histogram name's samples
// labelled kind, interpolated inside a bucket.
func histQuantile(reg *prometheus.Registry, name, kind string, q float64) float64 {
	mf := family(reg, name)
	if mf == nil {
		return math.NaN()
	}
	for _, m := range mf.GetMetric() {
		if !labeled(m, kind) {
			continue
		}
		h := m.GetHistogram()
		rank := q * float64(h.GetSampleCount())
		var prevCount, prevBound float64
		for _, b := range h.GetBucket() {
			c := float64(b.GetCumulativeCount())
			if c >= rank {
				if c == prevCount {
					return b.GetUpperBound()
				}
				return prevBound + (b.GetUpperBound()-prevBound)*(rank-prevCount)/(c-prevCount)
			}
			prevCount, prevBound = c, b.GetUpperBound()
		}
		return math.Inf(1)
	}
	return math.NaN()
}

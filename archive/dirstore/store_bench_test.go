package dirstore

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/golivestream/live/archive/store"
)

// BenchmarkSync compares the two ways of making appends durable, side by
// side: each of files files gets a 325 kB segment (a second of a 2.6 Mb/s
// stream) and an index line, then either each file is synced
// (AppendFile.Sync: an fdatasync each) or the store is (SyncAll: one
// syncfs). One op is one such round; cpu-µs/op is the process's CPU
// (user and system, getrusage: the writeback a sync does in the
// caller's name counts), of which the appends alone are the nosync case.
//
//	go test -run '^$' -bench Sync -benchtime 100x ./archive/dirstore
func BenchmarkSync(b *testing.B) {
	seg, line := make([]byte, 325_000), make([]byte, 150)
	for i := range seg {
		seg[i] = byte(i * 131)
	}
	for _, files := range []int{1, 10} {
		for _, how := range []string{"each", "all", "nosync"} {
			b.Run(fmt.Sprintf("files=%d/sync=%s", files, how), func(b *testing.B) {
				st, err := New(Config{Dir: b.TempDir(), NoSync: how == "nosync"})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				ctx := b.Context()
				type pair struct{ pack, index store.AppendFile }
				fs := make([]pair, files)
				for i := range fs {
					for _, f := range []*store.AppendFile{&fs[i].pack, &fs[i].index} {
						name := "pack"
						if f == &fs[i].index {
							name = "index"
						}
						if *f, err = st.OpenAppend(ctx, fmt.Sprintf("s%d/%s", i, name)); err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { (*f).Close() })
					}
				}
				before := cpu(b)
				b.ResetTimer()
				for range b.N {
					for _, f := range fs {
						if err := f.pack.Append(ctx, seg); err != nil {
							b.Fatal(err)
						}
					}
					if how == "all" {
						if err := st.SyncAll(ctx); err != nil {
							b.Fatal(err)
						}
					}
					for _, f := range fs {
						if how == "each" {
							if err := f.pack.Sync(ctx); err != nil {
								b.Fatal(err)
							}
						}
						if err := f.index.Append(ctx, line); err != nil {
							b.Fatal(err)
						}
					}
					switch how {
					case "all":
						if err := st.SyncAll(ctx); err != nil {
							b.Fatal(err)
						}
					case "each":
						for _, f := range fs {
							if err := f.index.Sync(ctx); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(cpu(b)-before)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// cpu returns the CPU time (user and system) the process used so far.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendFresh appends a 325 kB segment held in memory freshly
// taken from the system, as the origin's segments are (the Go runtime
// maps its heap's pages back in as it grows again): written from there
// (direct), or first copied into a buffer used over and over (gathered,
// what the archive's committer does). cpu-µs/op is the thread's CPU for
// the copy and the append (CLOCK_THREAD_CPUTIME_ID), not for making the
// segment.
//
//	go test -run '^$' -bench AppendFresh -benchtime 300x ./archive/dirstore
func BenchmarkAppendFresh(b *testing.B) {
	const size = 325_000
	template := make([]byte, size)
	for i := range template {
		template[i] = byte(i * 131)
	}
	for _, how := range []string{"direct", "gathered"} {
		b.Run(how, func(b *testing.B) {
			st, err := New(Config{Dir: b.TempDir(), NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			f, err := st.OpenAppend(b.Context(), "pack")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			gather := make([]byte, 0, size)
			var spent time.Duration
			for range b.N {
				seg, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
				if err != nil {
					b.Fatal(err)
				}
				copy(seg, template)
				t0 := threadCPU(b)
				data := seg
				if how == "gathered" {
					data = append(gather[:0], seg...)
				}
				if err := f.Append(b.Context(), data); err != nil {
					b.Fatal(err)
				}
				spent += threadCPU(b) - t0
				if err := syscall.Munmap(seg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(spent)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

// threadCPU returns the CPU time the calling thread used so far.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

package loadtest

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, us := range []int64{0, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 1 << 20, 1 << 28, 1<<29 - 1} {
		i := histBucket(us)
		if i < prev {
			t.Errorf("bucket of %d µs is %d, below the previous %d", us, i, prev)
		}
		prev = i
		lo, hi := histBounds(i)
		if us < lo || us >= hi {
			t.Errorf("%d µs in bucket %d = [%d, %d)", us, i, lo, hi)
		}
		if w := hi - lo; w > 1 && float64(w)/float64(lo) > 0.126 {
			t.Errorf("bucket %d = [%d, %d) is wider than 1/8", i, lo, hi)
		}
	}
	if i := histBucket(1 << 40); i != histBuckets-1 {
		t.Errorf("a huge value lands in bucket %d, want the last", i)
	}
	if i := histBucket(-5); i != 0 {
		t.Errorf("a negative value lands in bucket %d", i)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	var s histSnapshot
	h.addTo(&s)
	if s.total() != 1000 {
		t.Fatalf("total %d", s.total())
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, 1000 * time.Millisecond}} {
		got := s.quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d < -0.07 || d > 0.07 {
			t.Errorf("q%v = %v, want %v within 7%%", tt.q, got, tt.want)
		}
	}
	if got := s.max(); got < 950*time.Millisecond || got > 1050*time.Millisecond {
		t.Errorf("max %v", got)
	}
	var empty histSnapshot
	if empty.quantile(0.99) != 0 || empty.max() != 0 {
		t.Error("an empty histogram has percentiles")
	}
}

// TestRecordingDoesNotAllocate: players record every request; that must
// cost no allocation.
func TestRecordingDoesNotAllocate(t *testing.T) {
	rec := newRecorder(time.Now(), 10*time.Second)
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		rec.request(classSegment, now, 3*time.Millisecond, 100000)
		rec.failure(errStatus, 404, now)
		rec.stall(time.Second)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per recording", allocs)
	}
}

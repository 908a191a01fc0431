package loadtest

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies are kept in log-scale buckets of microseconds: values below 8
// exactly, then 8 buckets per power of two (each about 9% wide), up to
// 2^29 µs (about 9 minutes); longer values land in the last bucket.
const (
	histSubBits = 3
	histBuckets = (29 - histSubBits + 1) << histSubBits
)

// histogram counts latencies. Add is safe for concurrent use and does not
// allocate; the zero value is empty.
type histogram struct {
	counts [histBuckets]atomic.Int64
}

// histBucket returns the bucket of a latency of us microseconds.
func histBucket(us int64) int {
	if us < 1<<histSubBits {
		return int(max(us, 0))
	}
	n := bits.Len64(uint64(us))
	shift := n - 1 - histSubBits
	i := (n-histSubBits)<<histSubBits + int(uint64(us)>>shift&(1<<histSubBits-1))
	return min(i, histBuckets-1)
}

// histBounds returns the range [lo, hi) of microseconds bucket i holds.
func histBounds(i int) (lo, hi int64) {
	if i < 1<<histSubBits {
		return int64(i), int64(i) + 1
	}
	e, m := i>>histSubBits, int64(i&(1<<histSubBits-1))
	lo = (1<<histSubBits + m) << (e - 1)
	return lo, lo + 1<<(e-1)
}

func (h *histogram) add(d time.Duration) { h.counts[histBucket(d.Microseconds())].Add(1) }

// snapshot is a histogram's counts at one moment, for arithmetic.
type histSnapshot [histBuckets]int64

func (h *histogram) addTo(s *histSnapshot) {
	for i := range h.counts {
		s[i] += h.counts[i].Load()
	}
}

func (s *histSnapshot) total() int64 {
	var n int64
	for _, c := range s {
		n += c
	}
	return n
}

// quantile returns the q-quantile (0 < q <= 1), as the middle of its
// bucket, or 0 without values.
func (s *histSnapshot) quantile(q float64) time.Duration {
	n := s.total()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen int64
	for i, c := range s {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			return time.Duration(lo+hi) * time.Microsecond / 2
		}
	}
	return 0
}

// max returns the middle of the highest non-empty bucket, or 0.
func (s *histSnapshot) max() time.Duration {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] > 0 {
			lo, hi := histBounds(i)
			return time.Duration(lo+hi) * time.Microsecond / 2
		}
	}
	return 0
}

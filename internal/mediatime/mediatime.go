// Package mediatime converts between stream time (time.Duration) and
// media time (int64 ticks of a timescale): the one conversion used
// everywhere, exact and overflow-safe.
package mediatime

import (
	"math"
	"math/bits"
	"time"
)

// nsPerSecond is the number of time.Duration units in one second.
const nsPerSecond = uint64(time.Second)

// Ticks converts d to ticks of timescale, rounding to the nearest tick
// (halves away from zero).
//
// The conversion is exact for every time.Duration: the product d*timescale is
// computed on 128 bits. A result that does not fit in an int64 (possible only
// for timescales above 1 GHz) saturates to math.MaxInt64 or math.MinInt64.
// A zero timescale gives 0.
//
// Ticks is the one conversion from stream time to media time; Duration is
// its inverse.
func Ticks(d time.Duration, timescale uint32) int64 {
	if timescale == 0 || d == 0 {
		return 0
	}
	return mulDivRound(int64(d), uint64(timescale), nsPerSecond)
}

// Duration converts ticks of timescale back to a time.Duration, rounding to
// the nearest nanosecond (halves away from zero).
//
// The product ticks*1e9 is computed on 128 bits; a result beyond the range of
// time.Duration saturates to math.MaxInt64 or math.MinInt64. A zero timescale
// gives 0.
func Duration(ticks int64, timescale uint32) time.Duration {
	if timescale == 0 || ticks == 0 {
		return 0
	}
	return time.Duration(mulDivRound(ticks, nsPerSecond, uint64(timescale)))
}

// mulDivRound returns v*mul/div rounded to the nearest integer, halves away
// from zero, saturated to the int64 range. div must not be zero.
func mulDivRound(v int64, mul, div uint64) int64 {
	neg := v < 0
	mag := uint64(v)
	if neg {
		mag = -mag // two's complement: also right for math.MinInt64
	}
	hi, lo := bits.Mul64(mag, mul)
	var carry uint64
	// Adding floor(div/2) before the floor division rounds to nearest with
	// halves away from zero; for an odd div no exact half can occur.
	lo, carry = bits.Add64(lo, div/2, 0)
	hi += carry
	if hi >= div { // quotient needs more than 64 bits
		if neg {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, div)
	if neg {
		if q >= 1<<63 {
			return math.MinInt64
		}
		return -int64(q)
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

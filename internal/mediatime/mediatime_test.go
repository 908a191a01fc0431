package mediatime

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// bigMulDivRound is the reference for Ticks and Duration: v*mul/div rounded
// to nearest, halves away from zero, saturated to int64.
func bigMulDivRound(v int64, mul, div uint64) int64 {
	if div == 0 {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(v), new(big.Int).SetUint64(mul))
	neg := n.Sign() < 0
	n.Abs(n)
	d := new(big.Int).SetUint64(div)
	// floor((2|n| + d) / 2d)
	n.Lsh(n, 1).Add(n, d)
	q := n.Quo(n, d.Lsh(d, 1))
	if neg {
		q.Neg(q)
	}
	switch {
	case q.Cmp(big.NewInt(math.MaxInt64)) > 0:
		return math.MaxInt64
	case q.Cmp(big.NewInt(math.MinInt64)) < 0:
		return math.MinInt64
	}
	return q.Int64()
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name      string
		d         time.Duration
		timescale uint32
		want      int64
	}{
		{"zero", 0, 90000, 0},
		{"zero timescale", time.Second, 0, 0},
		{"one second video", time.Second, 90000, 90000},
		{"one second audio", time.Second, 48000, 48000},
		{"one frame at 30fps", time.Second / 30, 90000, 3000},
		{"ms at 90k", time.Millisecond, 90000, 90},
		{"ms at 44.1k", time.Millisecond, 44100, 44},       // 44.1
		{"1.5 ms at 1k", 1500 * time.Microsecond, 1000, 2}, // half away from zero
		{"-1.5 ms at 1k", -1500 * time.Microsecond, 1000, -2},
		{"just below half", 1499999 * time.Nanosecond, 1000, 1},
		{"third rounds down", 333333333, 3, 1}, // 0.999999999
		{"negative", -time.Second, 90000, -90000},
		{"max duration at 90k", math.MaxInt64, 90000, 830103483316930},
		{"min duration at 90k", math.MinInt64, 90000, -830103483316930},
		{"max duration at 1", math.MaxInt64, 1, 9223372037},
		{"max duration at 1GHz", math.MaxInt64, 1e9, math.MaxInt64},
		{"max duration saturates", math.MaxInt64, math.MaxUint32, math.MaxInt64},
		{"min duration saturates", math.MinInt64, math.MaxUint32, math.MinInt64},
		{"one ns at max timescale", 1, math.MaxUint32, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Ticks(tt.d, tt.timescale)
			if got != tt.want {
				t.Errorf("Ticks(%d, %d) = %d, want %d", int64(tt.d), tt.timescale, got, tt.want)
			}
			if ref := bigMulDivRound(int64(tt.d), uint64(tt.timescale), uint64(time.Second)); tt.timescale != 0 && got != ref {
				t.Errorf("Ticks(%d, %d) = %d, math/big says %d", int64(tt.d), tt.timescale, got, ref)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name      string
		ticks     int64
		timescale uint32
		want      time.Duration
	}{
		{"zero", 0, 90000, 0},
		{"zero timescale", 90000, 0, 0},
		{"one second", 90000, 90000, time.Second},
		{"aac frame", 1024, 48000, 21333333},    // 21333333.33
		{"one third", 1, 3, 333333333},          // .333
		{"two thirds", 2, 3, 666666667},         // .667
		{"minus two thirds", -2, 3, -666666667}, // away from zero
		{"half ns", 1, 2e9 - 2, 1},              // 0.500000000500 ns
		{"max ticks at 90k", math.MaxInt64, 90000, math.MaxInt64},
		{"min ticks at 90k", math.MinInt64, 90000, math.MinInt64},
		{"max ticks at max timescale", math.MaxInt64, math.MaxUint32, 2147483648500000000},
		{"max ticks at 1 saturates", math.MaxInt64, 1, math.MaxInt64},
		{"min ticks at 1 saturates", math.MinInt64, 1, math.MinInt64},
		{"large exact", 830103483316723, 90000, 9223372036852477778},
		{"negative", -90000, 90000, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Duration(tt.ticks, tt.timescale)
			if got != tt.want {
				t.Errorf("Duration(%d, %d) = %d, want %d", tt.ticks, tt.timescale, got, tt.want)
			}
			if ref := bigMulDivRound(tt.ticks, uint64(time.Second), uint64(tt.timescale)); tt.timescale != 0 && int64(got) != ref {
				t.Errorf("Duration(%d, %d) = %d, math/big says %d", tt.ticks, tt.timescale, got, ref)
			}
		})
	}
}

// TestTicksRandom compares Ticks and Duration with math/big over random
// values of every magnitude and common and extreme timescales.
func TestTicksRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	timescales := []uint32{1, 3, 1000, 44100, 48000, 90000, 1e9, 1e9 + 7, math.MaxUint32}
	for range 20000 {
		v := int64(rng.Uint64() >> rng.IntN(64))
		if rng.IntN(2) == 0 {
			v = -v
		}
		ts := timescales[rng.IntN(len(timescales))]
		if rng.IntN(4) == 0 {
			ts = rng.Uint32() | 1
		}
		if got, want := Ticks(time.Duration(v), ts), bigMulDivRound(v, uint64(ts), uint64(time.Second)); got != want {
			t.Fatalf("Ticks(%d, %d) = %d, want %d", v, ts, got, want)
		}
		if got, want := int64(Duration(v, ts)), bigMulDivRound(v, uint64(time.Second), uint64(ts)); got != want {
			t.Fatalf("Duration(%d, %d) = %d, want %d", v, ts, got, want)
		}
	}
}

// TestTicksRoundTrip checks that converting whole ticks to a duration and
// back gives the same ticks for the timescales used by the packager.
func TestTicksRoundTrip(t *testing.T) {
	for _, ts := range []uint32{90000, 48000, 44100, 24000} { // video, and audio rates
		for _, v := range []int64{0, 1, 1023, 1024, 3000, 1 << 40, -1 << 40} {
			if got := Ticks(Duration(v, ts), ts); got != v {
				t.Errorf("timescale %d: Ticks(Duration(%d)) = %d", ts, v, got)
			}
		}
	}
}

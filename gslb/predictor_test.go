package gslb

import (
	"math"
	"testing"
	"time"
)

// series makes samples of values at the given seconds.
func series(at []float64, values ...float64) []Sample {
	base := time.Unix(1_700_000_000, 0)
	out := make([]Sample, len(values))
	for i, v := range values {
		out[i] = Sample{At: base.Add(time.Duration(at[i] * float64(time.Second))), Value: v}
	}
	return out
}

var every3s = []float64{0, 3, 6, 9}

func TestPredictors(t *testing.T) {
	h := 3 * time.Second
	tests := []struct {
		name                string
		samples             []Sample
		horizon             time.Duration
		cubic, linear, last float64
	}{
		{"no samples", nil, h, 0, 0, 0},
		{"one sample", series(every3s, 42), h, 42, 42, 42},
		{"two samples: a line", series(every3s, 10, 20), h, 30, 30, 20},
		{"straight line: exact", series(every3s, 10, 20, 30), h, 40, 40, 30},
		{"uneven steps, straight line", series([]float64{0, 1, 4}, 0, 10, 40), 2 * time.Second, 60, 60, 40},
		{"flat", series(every3s, 5, 5, 5), h, 5, 5, 5},
		// Rising fast: both derivatives positive, above the line.
		{"rising fast", series(every3s, 0, 10, 30), h, 30 + 25 + 10.0/3, 50, 30},
		// Rising but decelerating: below the line.
		{"rising, decelerating", series(every3s, 0, 20, 30), h, 30 + 5 - 20.0/3, 40, 30},
		// Rose, then stayed: the spline is flat at the end, where a
		// parabola through the points would turn down.
		{"plateau after a ramp", series(every3s, 90, 100, 100), h, 100, 100, 100},
		// A step in the last interval: m₂ = 1.5·d₂, no curvature.
		{"step from flat", series(every3s, 10, 10, 20), h, 35, 30, 20},
		// A peak: slope m₂ = 3·d₂ at the limit, curving down: clamped.
		{"turned down", series(every3s, 0, 30, 20), h, 0, 10, 20},
		// Falling to nothing: clamped at zero.
		{"falling to zero", series(every3s, 100, 50, 10), h, 0, 0, 10},
		{"horizon zero", series(every3s, 0, 10, 30), 0, 30, 30, 30},
		{"same instant twice: the line through the last two", series([]float64{0, 3, 3}, 0, 10, 20), h, 20, 20, 20},
		{"only the last three count", series(every3s, 1000, 10, 20, 30), h, 40, 40, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				p    Predictor
				want float64
			}{{Cubic{}, tt.cubic}, {Linear{}, tt.linear}, {Last{}, tt.last}} {
				if got := c.p.Predict(tt.samples, tt.horizon); math.Abs(got-c.want) > 1e-9 {
					t.Errorf("%s: %v, want %v", c.p.Name(), got, c.want)
				}
			}
		})
	}
}

// TestCubicParabola: on an accelerating load the cubic is closer than the
// line, and on a decelerating one too.
func TestCubicParabola(t *testing.T) {
	for _, a := range []float64{2, -2} {
		f := func(t float64) float64 { return 1000 + 50*t + a*t*t }
		s := series(every3s, f(0), f(3), f(6))
		want := f(9)
		cubic, linear := Cubic{}.Predict(s, 3*time.Second), Linear{}.Predict(s, 3*time.Second)
		if math.Abs(cubic-want) >= math.Abs(linear-want) {
			t.Errorf("a=%v: cubic %.1f is no closer to %.1f than linear %.1f", a, cubic, want, linear)
		}
	}
}

func TestPredictorByName(t *testing.T) {
	for _, name := range []string{"cubic", "linear", "last"} {
		p, err := PredictorByName(name)
		if err != nil || p.Name() != name {
			t.Errorf("%s: %v, %v", name, p, err)
		}
	}
	if _, err := PredictorByName("spline"); err == nil {
		t.Error("an unknown name was accepted")
	}
}

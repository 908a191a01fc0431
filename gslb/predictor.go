package gslb

import (
	"fmt"
	"math"
	"time"
)

// Sample is one figure of a load series and when it arrived.
type Sample struct {
	At    time.Time
	Value float64
}

// Predictor forecasts a PoP's load from its last reports. Implementations
// hold no state and are safe for concurrent use.
type Predictor interface {
	// Predict returns the value expected horizon after the last of
	// samples, which are in time order; it uses at most the last three,
	// never returns less than zero, and returns 0 without samples.
	Predict(samples []Sample, horizon time.Duration) float64
	// Name is how flags and logs call the predictor.
	Name() string
}

// PredictorByName returns the predictor called name: "cubic", "linear" or
// "last".
func PredictorByName(name string) (Predictor, error) {
	for _, p := range []Predictor{Cubic{}, Linear{}, Last{}} {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("unknown predictor %q: want cubic, linear or last", name)
}

// Last predicts that the load stays at its last measured value: no
// prediction, the baseline the others are compared with.
type Last struct{}

// Name returns "last".
func (Last) Name() string { return "last" }

// Predict returns the last sample's value.
func (Last) Predict(samples []Sample, _ time.Duration) float64 {
	if len(samples) == 0 {
		return 0
	}
	return max(samples[len(samples)-1].Value, 0)
}

// Linear extrapolates the line through the last two samples.
type Linear struct{}

// Name returns "linear".
func (Linear) Name() string { return "linear" }

// Predict returns y₂ + H·(y₂−y₁)/(t₂−t₁), or the last value with one sample.
func (Linear) Predict(samples []Sample, horizon time.Duration) float64 {
	n := len(samples)
	if n < 2 {
		return Last{}.Predict(samples, horizon)
	}
	a, b := samples[n-2], samples[n-1]
	h := b.At.Sub(a.At).Seconds()
	if h <= 0 {
		return Last{}.Predict(samples, horizon)
	}
	return max(b.Value+horizon.Seconds()*(b.Value-a.Value)/h, 0)
}

// Cubic fits a cubic spline through the last three samples and
// extrapolates it one horizon ahead with its first and second derivatives
// at the last sample, after Facebook Live's load balancer: a load rising
// ever faster (both derivatives positive) is predicted above the line
// through the last two samples, a load rising but decelerating (second
// derivative negative) below it.
//
// The spline is the monotone piecewise cubic Hermite interpolant of
// Fritsch and Carlson (PCHIP), so it never overshoots the data between
// samples: a load that rose and then stayed flat has a zero slope at the
// end, not the downturn a parabola through the same three points shows.
// With samples (t₀,y₀), (t₁,y₁), (t₂,y₂), steps h₁ = t₁−t₀, h₂ = t₂−t₁
// and secants d₁ = (y₁−y₀)/h₁, d₂ = (y₂−y₁)/h₂:
//
//	slope at t₁:  m₁ = 0 when d₁·d₂ ≤ 0, else the weighted harmonic mean
//	              m₁ = (w₁+w₂) / (w₁/d₁ + w₂/d₂), w₁ = 2h₂+h₁, w₂ = h₂+2h₁
//	slope at t₂:  m₂ = ((2h₂+h₁)·d₂ − h₂·d₁) / (h₁+h₂), set to 0 when its
//	              sign differs from d₂'s, limited to 3·d₂ when d₁ and d₂
//	              differ in sign
//	curvature at t₂, of the Hermite cubic on [t₁,t₂]:
//	              c₂ = (6·(y₁−y₂)/h₂ + 2·m₁ + 4·m₂) / h₂
//	prediction:   ŷ(t₂+H) = max(0, y₂ + m₂·H + c₂·H²/2)
//
// On a straight line this is exact (m₂ = d₂, c₂ = 0), as Linear is. With
// two samples it is Linear, with one Last.
type Cubic struct{}

// Name returns "cubic".
func (Cubic) Name() string { return "cubic" }

// Predict returns the spline's extrapolation; see Cubic.
func (Cubic) Predict(samples []Sample, horizon time.Duration) float64 {
	n := len(samples)
	if n < 3 {
		return Linear{}.Predict(samples, horizon)
	}
	s0, s1, s2 := samples[n-3], samples[n-2], samples[n-1]
	h1, h2 := s1.At.Sub(s0.At).Seconds(), s2.At.Sub(s1.At).Seconds()
	if h1 <= 0 || h2 <= 0 {
		return Linear{}.Predict(samples, horizon)
	}
	m2, c2 := pchipEnd(s0.Value, s1.Value, s2.Value, h1, h2)
	H := horizon.Seconds()
	return max(s2.Value+m2*H+c2*H*H/2, 0)
}

// pchipEnd returns the first and second derivatives at the last of three
// points of their monotone cubic Hermite interpolant (see Cubic).
func pchipEnd(y0, y1, y2, h1, h2 float64) (slope, curvature float64) {
	d1, d2 := (y1-y0)/h1, (y2-y1)/h2
	var m1 float64
	if d1*d2 > 0 {
		w1, w2 := 2*h2+h1, h2+2*h1
		m1 = (w1 + w2) / (w1/d1 + w2/d2)
	}
	m2 := ((2*h2+h1)*d2 - h2*d1) / (h1 + h2)
	switch {
	case math.Signbit(m2) != math.Signbit(d2) || d2 == 0:
		m2 = 0
	case math.Signbit(d1) != math.Signbit(d2) && math.Abs(m2) > 3*math.Abs(d2):
		m2 = 3 * d2
	}
	c2 := (6*(y1-y2)/h2 + 2*m1 + 4*m2) / h2
	return m2, c2
}

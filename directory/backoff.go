package directory

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is an exponential backoff with jitter. Not safe for
// concurrent use.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi, cur: lo} }

// next returns the next wait, a random time between half the current
// bound and the bound, and doubles the bound.
func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(2*b.cur, b.max)
	return d
}

// reset starts again from the least wait.
func (b *backoff) reset() { b.cur = b.min }

// wait waits the next wait, and reports false if ctx ended it.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

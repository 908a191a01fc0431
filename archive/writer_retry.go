package archive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/golivestream/live/archive/store"
)

// waitPause waits out the backoff after failed writes. It reports false
// when ctx ended first.
func (w *Writer) waitPause(ctx context.Context) bool {
	w.mu.Lock()
	d := time.Until(w.pauseUntil)
	w.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// call runs one store call of the item's kind with WriteTimeout,
// recording its outcome: latency and bytes, or the error and the
// backoff it starts.
func (w *Writer) call(ctx context.Context, kind string, size int, f func(context.Context) error) error {
	return w.callN(ctx, kind, 1, size, f)
}

// callN is call for a store call that completes the writes of items
// items of size bytes in all: the latency and the counts are recorded
// only for items > 0 (a step that makes nothing durable yet, such as an
// append to a pack, records only its failures).
func (w *Writer) callN(ctx context.Context, kind string, items, size int, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	began := time.Now()
	err := f(cctx)
	if err == nil {
		if items > 0 {
			w.m.latency.WithLabelValues(kind).Observe(time.Since(began).Seconds())
			w.m.written.WithLabelValues(kind).Add(float64(items))
			w.m.writtenBytes.WithLabelValues(kind).Add(float64(size))
		}
		w.succeeded()
		return nil
	}
	w.m.errors.WithLabelValues(kind).Inc()
	full := errors.Is(err, store.ErrFull)
	if full {
		w.m.full.Inc()
	}
	w.mu.Lock()
	w.failures++
	n := w.failures
	d := w.cfg.RetryMin << min(n-1, 30)
	if d > w.cfg.RetryMax || d <= 0 {
		d = w.cfg.RetryMax
	}
	d = d/2 + rand.N(d/2+1)
	w.pauseUntil = time.Now().Add(d)
	w.mu.Unlock()
	switch {
	case n == 1 && full:
		w.log.Error("archive store full: writes retried, the oldest queued segments dropped while it lasts", "kind", kind, "error", err)
	case n == 1:
		w.log.Error("archive write failed: retrying with backoff", "kind", kind, "error", err)
	default:
		w.log.Debug("archive write failed again", "kind", kind, "failures", n, "retry_in", d, "error", err)
	}
	return err
}

// succeeded ends a run of failures.
func (w *Writer) succeeded() {
	w.mu.Lock()
	n := w.failures
	w.failures = 0
	w.pauseUntil = time.Time{}
	w.mu.Unlock()
	if n > 0 {
		w.log.Info("archive store recovered", "failures", n)
	}
}

// retry runs a store call until it succeeds or ctx ends, waiting out
// the backoff between attempts. It is for the steps that follow an
// object's write (metadata, index), which cannot go back to the queue.
func (w *Writer) retry(ctx context.Context, kind string, size int, f func(context.Context) error) error {
	for {
		err := w.call(ctx, kind, size, f)
		if err == nil {
			return nil
		}
		w.m.retries.Inc()
		if !w.waitPause(ctx) {
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		}
	}
}

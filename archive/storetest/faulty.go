package storetest

import (
	"context"
	"sync"

	"github.com/golivestream/live/archive/store"
)

// Faulty controls a wrapped store whose writes (Put, OpenAppend and
// the appends and syncs of its files, DeletePrefix) can be made to fail
// or to hang. Reads pass through. It is safe for concurrent use.
type Faulty struct {
	inner store.Store

	mu sync.Mutex // guards the fields below
	// err, when not nil, is what writes return.
	err error
	// hold, when not nil, is closed by Release; writes wait for it.
	hold chan struct{}
	// held is closed when a write first waits on hold.
	held chan struct{}
	// heldOnce reports that held is closed.
	heldOnce bool
	// attempts counts writes begun; attempted is closed and replaced at
	// each.
	attempts  int
	attempted chan struct{}
}

// Wrap wraps st. It returns the control and the store to hand out,
// which implements store.Appender when st does.
func Wrap(st store.Store) (*Faulty, store.Store) {
	f := &Faulty{inner: st, attempted: make(chan struct{})}
	if _, ok := st.(store.Appender); ok {
		return f, faultyAppender{faultyStore{f}}
	}
	return f, faultyStore{f}
}

// Fail makes writes return err until Release.
func (f *Faulty) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Hang makes writes wait until Release (or their context ends). The
// channel returned is closed when the first write starts to wait.
func (f *Faulty) Hang() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
	f.held = make(chan struct{})
	f.heldOnce = false
	return f.held
}

// Release makes writes go through again.
func (f *Faulty) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = nil
	if f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
}

// Attempts returns the number of writes begun so far.
func (f *Faulty) Attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// AwaitAttempts waits until n writes have begun in all, or ctx ends.
func (f *Faulty) AwaitAttempts(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		got, ch := f.attempts, f.attempted
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// gate applies the fault in force to one write.
func (f *Faulty) gate(ctx context.Context) error {
	f.mu.Lock()
	f.attempts++
	close(f.attempted)
	f.attempted = make(chan struct{})
	err, hold := f.err, f.hold
	if hold != nil && !f.heldOnce {
		f.heldOnce = true
		close(f.held)
	}
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	return err
}

type faultyStore struct{ f *Faulty }

func (s faultyStore) Put(ctx context.Context, key string, body []byte) error {
	if err := s.f.gate(ctx); err != nil {
		return err
	}
	return s.f.inner.Put(ctx, key, body)
}

func (s faultyStore) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	return s.f.inner.Get(ctx, key, off, n)
}

func (s faultyStore) List(ctx context.Context, prefix string) ([]store.Entry, error) {
	return s.f.inner.List(ctx, prefix)
}

func (s faultyStore) DeletePrefix(ctx context.Context, prefix string) error {
	if err := s.f.gate(ctx); err != nil {
		return err
	}
	return s.f.inner.DeletePrefix(ctx, prefix)
}

type faultyAppender struct{ faultyStore }

func (s faultyAppender) OpenAppend(ctx context.Context, key string) (store.AppendFile, error) {
	if err := s.f.gate(ctx); err != nil {
		return nil, err
	}
	af, err := s.f.inner.(store.Appender).OpenAppend(ctx, key)
	if err != nil {
		return nil, err
	}
	return faultyFile{af, s.f}, nil
}

// faultyFile applies the faults to the appends and syncs of a file open
// for appending.
type faultyFile struct {
	store.AppendFile
	f *Faulty
}

func (ff faultyFile) Append(ctx context.Context, data []byte) error {
	if err := ff.f.gate(ctx); err != nil {
		return err
	}
	return ff.AppendFile.Append(ctx, data)
}

func (ff faultyFile) Sync(ctx context.Context) error {
	if err := ff.f.gate(ctx); err != nil {
		return err
	}
	return ff.AppendFile.Sync(ctx)
}

package pop

import "sync"

// crew owns a Server's goroutines: Go starts one unless the crew is
// closed, and Close waits for them all. Unlike a bare WaitGroup, a
// goroutine started by one that is not itself counted (singleflight runs
// flights in its own goroutines) cannot slip past Close.
type crew struct {
	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup
}

// Go runs f in a new goroutine and reports true, or does nothing and
// reports false once Close was called.
func (c *crew) Go(f func()) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// Close refuses new goroutines and waits for the running ones.
func (c *crew) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

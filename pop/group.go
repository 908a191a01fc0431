package pop

import "sync"

// group owns a Server's goroutines: Go starts one unless the group is
// closed, and Close waits for them all. Unlike a bare WaitGroup, a
// goroutine started by one that is not itself counted (singleflight runs
// fills in its own goroutines) cannot slip past Close.
type group struct {
	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup
}

// Go runs f in a new goroutine and reports true, or does nothing and
// reports false once Close was called.
func (g *group) Go(f func()) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// Close refuses new goroutines and waits for the running ones.
func (g *group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

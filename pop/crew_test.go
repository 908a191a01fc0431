package pop

import (
	"sync/atomic"
	"testing"
)

// Close waits for every goroutine, including one started by a goroutine
// of the crew, and the crew starts none after it.
func TestCrew(t *testing.T) {
	var c crew
	var ran atomic.Int32
	release := make(chan struct{})
	inner := make(chan bool, 1)
	c.Go(func() {
		<-release
		inner <- c.Go(func() { ran.Add(1) }) // started while Close waits
		ran.Add(1)
	})
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	close(release)
	<-closed
	if started := <-inner; started && ran.Load() != 2 || !started && ran.Load() != 1 {
		t.Errorf("Close returned with %d of the goroutines done (inner started: %v)", ran.Load(), started)
	}
	if c.Go(func() { t.Error("ran after Close") }) {
		t.Error("Go after Close reported true")
	}
}

//go:build race

package loadtest

// raceEnabled says the race detector instruments this build: its
// bookkeeping allocates, so allocation counts are not the code's.
const raceEnabled = true

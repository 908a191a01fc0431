//go:build !race

package loadtest

// raceEnabled says the race detector instruments this build.
const raceEnabled = false

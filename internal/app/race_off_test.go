//go:build !race

package app

// raceEnabled says the race detector instruments this build.
const raceEnabled = false

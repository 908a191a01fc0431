//go:build race

package app

// raceEnabled says the race detector instruments this build: the Go
// side runs several times slower, and timings measured in a browser
// against it are looser.
const raceEnabled = true

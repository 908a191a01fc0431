// Package democlip holds the demo clip that `go run ./cmd/live` publishes
// to itself, and that tests and the load generator publish: a 6 s
// progressive MP4 (see README.md beside this file).
package democlip

import _ "embed" // for go:embed

// clip is clip.mp4. A string, so that nobody can modify the embedded
// bytes.
//
//go:embed clip.mp4
var clip string

// Bytes returns the demo clip, a 6 s progressive MP4 (640x360 30 fps
// H.264 High with B-frames, AAC-LC 48 kHz stereo, a keyframe every
// second). Each call returns a fresh copy that the caller may modify.
func Bytes() []byte { return []byte(clip) }

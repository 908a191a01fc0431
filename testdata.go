// Package live is the root of the golivestream server module: it holds the
// assets bundled with the server, such as the demo clip that
// `go run ./cmd/live` publishes to itself.
package live

import _ "embed" // for go:embed

// demoClip is testdata/clip.mp4; see testdata/README.md. A string, so that
// nobody can modify the embedded bytes.
//
//go:embed testdata/clip.mp4
var demoClip string

// DemoClip returns the bundled demo clip, a 6 s progressive MP4 (640x360
// 30 fps H.264 High with B-frames, AAC-LC 48 kHz stereo, a keyframe every
// second). Each call returns a fresh copy that the caller may modify.
func DemoClip() []byte {
	return []byte(demoClip)
}

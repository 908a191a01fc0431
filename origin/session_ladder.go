package origin

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// ErrRenditionChanged refuses a ladder rendition whose codec setup differs
// from the one the stream already lists under that name: players cached
// its init segment as immutable.
var ErrRenditionChanged = errors.New("rendition changed its codec setup")

// Rendition is a video rendition made from a session's source by a
// transcoder. Its access units are already on the stream timeline (see
// Session.TimelineOffset). Its methods are called from one goroutine.
type Rendition struct {
	sess *Session
	t    *sessionTrack

	mu     sync.Mutex
	closed bool // guarded by mu
}

// AddRendition adds ladder rung slot (0 for the first) of the session's
// stream, coded as c, starting at start on the stream timeline: rendition
// "v{n+slot}" after the publisher's n video tracks. A rendition that the
// stream already has (its transcoder restarted, or the publisher came back)
// goes on with the next segment number after a discontinuity; a new one
// numbers its segments by their place on the timeline, so that they match
// a source cut every segment duration.
func (sess *Session) AddRendition(slot int, c codecs.Codec, start time.Duration) (*Rendition, error) {
	if !c.IsVideo() || slot < 0 {
		return nil, fmt.Errorf("add rendition %d: only video renditions can be added", slot)
	}
	sources := 0
	for _, t := range sess.tracks {
		if t.pk.Info().Video {
			sources++
		}
	}
	rid := fmt.Sprintf("v%d", sources+slot)
	t, err := sess.st.addRung(sess, rid, c, start)
	if err != nil {
		return nil, err
	}
	return &Rendition{sess: sess, t: t}, nil
}

// ID returns the rendition's name in URLs: "v1", "v2"...
func (r *Rendition) ID() string { return r.t.rid }

// WriteVideo adds a video access unit, with times on the stream timeline.
func (r *Rendition) WriteVideo(pts, dts time.Duration, au [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errSessionClosed
	}
	if err := r.t.pk.WriteVideo(pts, dts, au); err != nil {
		return err
	}
	return r.t.cipher.takeErr() // a segment that could not be encrypted was dropped
}

// Close flushes the rendition's last segment. The rendition stays listed;
// AddRendition with the same slot goes on with it.
func (r *Rendition) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.t.pk.Flush()
	}
}

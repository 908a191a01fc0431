package origin

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/packager"
)

// Session is one publisher feeding a stream. Its Write methods are called
// from one goroutine (the publisher's); Close may be called from any.
type Session struct {
	st     *stream
	log    *slog.Logger
	tracks []*sessionTrack

	// zero is the publisher's first timestamp, mapped to base on the
	// stream timeline.
	zero     time.Duration
	haveZero bool
	base     time.Duration
	// last is each track's last decode time on the stream timeline, to
	// notice jumps of the publisher's clock.
	last []lastTime
	// arrival is when the access unit being written reached us; it dates
	// the segments that access unit closes.
	arrival time.Time

	closeOnce sync.Once
	mu        sync.Mutex // serialises writes with Close
	closed    bool       // guarded by mu
}

type sessionTrack struct {
	rid string
	pk  *packager.Track
	// disc marks the next segment as following a discontinuity.
	disc bool
	// cipher encrypts the packager's output; nil for a clear stream
	// (protect_track.go).
	cipher *trackCipher
}

// init returns the track's init segment as served: protected when the
// stream is encrypted.
func (t *sessionTrack) init() []byte {
	if t.cipher != nil {
		return t.cipher.init()
	}
	return t.pk.Init()
}

// newSession builds the packagers for tracks and attaches them to the
// stream old (resuming it when the tracks are unchanged) or to a new
// stream instance, made with env and encrypted with keys (nil: clear).
// Publish calls it with the registry locked, so that no other session is
// made for name meanwhile.
func newSession(env *streamEnv, old *stream, name string, tracks []codecs.Codec, now time.Time, epoch int64, keys *streamKeys) (*Session, error) {
	sess := &Session{log: env.log.With("stream", name)}
	ids := renditionIDs(tracks)

	build := func(first func(rid string) uint64) error {
		sess.tracks = sess.tracks[:0]
		for i, c := range tracks {
			rid := ids[i]
			pk, err := packager.New(packager.Config{
				Codec:           c,
				SegmentDuration: env.cfg.SegmentDuration,
				ChunkDuration:   env.cfg.ChunkDuration,
				FirstNumber:     first(rid),
				OnSegment:       func(seg *packager.Segment) { sess.onSegment(rid, seg) },
				OnChunk:         func(c *packager.Chunk) { sess.onChunk(rid, c) },
			})
			if err != nil {
				return fmt.Errorf("track %d: %w", i, err)
			}
			sess.tracks = append(sess.tracks, &sessionTrack{rid: rid, pk: pk})
		}
		return nil
	}
	if err := build(func(string) uint64 { return 0 }); err != nil {
		return nil, err
	}

	if old != nil && sess.sameTracks(old) {
		// Resume: numbers go on, and the timeline jumps to the wall clock so
		// that availability times stay true (ISO/IEC 23009-1 5.3.9.5).
		prev := old.snap.Load()
		if err := build(func(rid string) uint64 { return prev.rendition(rid).next }); err != nil {
			return nil, err
		}
		sess.st = old
		sess.base = max(prev.end(), now.Sub(old.ast))
		for _, t := range sess.tracks {
			t.disc = len(prev.rendition(t.rid).entries) > 0
		}
		sess.log.Info("stream resumed", "epoch", old.epoch, "timeline", sess.base)
	} else {
		sess.st = newStream(env, name, now, old, epoch, keys)
		if old != nil {
			sess.st.continues(old)
			sess.log.Info("stream restarted with new tracks", "old_epoch", old.epoch, "epoch", sess.st.epoch)
		} else {
			sess.log.Info("stream started", "epoch", sess.st.epoch)
		}
	}

	for _, t := range sess.tracks {
		var err error
		if t.cipher, err = newTrackCipher(sess.st.keys, t.rid, t.pk.Init()); err != nil {
			return nil, err
		}
	}
	sess.last = make([]lastTime, len(sess.tracks))
	sess.st.attach(sess, now)
	return sess, nil
}

// sameTracks reports whether the session's tracks would produce the same
// renditions, with identical init segments, as the stream old.
func (sess *Session) sameTracks(old *stream) bool {
	inits := make(map[string][]byte, len(sess.tracks))
	for _, t := range sess.tracks {
		init, err := old.keys.protectedInit(t.rid, t.pk.Init())
		if err != nil {
			return false
		}
		inits[t.rid] = init
	}
	return sameInits(inits, old.snap.Load())
}

// sameSetup reports whether a publisher of tracks would resume st: its
// tracks make st's renditions, with identical init segments.
func sameSetup(st *stream, tracks []codecs.Codec) bool {
	ids := renditionIDs(tracks)
	inits := make(map[string][]byte, len(tracks))
	for i, c := range tracks {
		pk, err := packager.New(packager.Config{Codec: c, SegmentDuration: st.env.cfg.SegmentDuration, ChunkDuration: st.env.cfg.ChunkDuration, OnSegment: func(*packager.Segment) {}})
		if err != nil {
			return false
		}
		if inits[ids[i]], err = st.keys.protectedInit(ids[i], pk.Init()); err != nil {
			return false
		}
	}
	return sameInits(inits, st.snap.Load())
}

// sameInits reports whether inits, by rendition, are those of the source
// renditions of snap, all of them.
func sameInits(inits map[string][]byte, snap *snapshot) bool {
	n := 0
	for _, r := range snap.renditions {
		if !r.ladder {
			n++
		}
	}
	if n != len(inits) {
		return false
	}
	for rid, init := range inits {
		r := snap.rendition(rid)
		if r == nil || r.init == nil || !bytes.Equal(r.init.body, init) {
			return false
		}
	}
	return true
}

// renditionIDs names tracks by kind and order: v0, a0.
func renditionIDs(tracks []codecs.Codec) []string {
	ids := make([]string, len(tracks))
	var v, a int
	for i, c := range tracks {
		if c.IsVideo() {
			ids[i] = fmt.Sprintf("v%d", v)
			v++
		} else {
			ids[i] = fmt.Sprintf("a%d", a)
			a++
		}
	}
	return ids
}

// maxClockJump is how far a track's timestamps may run ahead of the wall
// clock between two of its access units before the session takes it for a
// jump of the publisher's clock, not a gap in the media.
const maxClockJump = 5 * time.Second

// maxClockBack is how far a track's timestamps may go back before the
// session takes it for a jump of the publisher's clock.
const maxClockBack = 500 * time.Millisecond

// timeline maps a publisher decode timestamp of track onto the stream
// timeline. When the publisher's clock jumps (an encoder restarted without
// reconnecting, a wrapped 32-bit RTMP clock), the mapping moves so that the
// track goes on after as much time as really passed; the other tracks,
// which jump too, follow the moved mapping. Media that arrives late (an
// uplink that froze, then caught up) is not a jump: its timestamps are
// kept.
func (sess *Session) timeline(track int, t time.Duration) time.Duration {
	if !sess.haveZero {
		sess.zero, sess.haveZero = t, true
	}
	d := t - sess.zero + sess.base
	l := &sess.last[track]
	if !l.at.IsZero() {
		wall := sess.arrival.Sub(l.at)
		if d-l.d-wall > maxClockJump || d < l.d-maxClockBack {
			to := l.d + max(wall, time.Millisecond)
			sess.zero += d - to
			sess.log.Warn("publisher clock jumped; timeline follows the wall clock", "track", track, "jump", d-l.d, "elapsed", wall)
			d = to
		}
	}
	*l = lastTime{d: d, at: sess.arrival}
	return d
}

// lastTime is where a track was on the stream timeline, and when.
type lastTime struct {
	d  time.Duration
	at time.Time
}

// TimelineOffset returns what to add to a publisher timestamp to get its
// place on the stream timeline, as of the last access unit written. A
// transcoder uses it to feed its encoder on the stream timeline.
func (sess *Session) TimelineOffset() time.Duration {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.base - sess.zero
}

// WriteVideo adds a video access unit of track.
func (sess *Session) WriteVideo(track int, pts, dts time.Duration, au [][]byte) error {
	return sess.write(track, func(pk *packager.Track) error {
		d := sess.timeline(track, dts)
		return pk.WriteVideo(d+(pts-dts), d, au)
	})
}

// WriteAudio adds an audio access unit of track.
func (sess *Session) WriteAudio(track int, pts time.Duration, au []byte) error {
	return sess.write(track, func(pk *packager.Track) error {
		return pk.WriteAudio(sess.timeline(track, pts), au)
	})
}

// write hands an access unit that has just arrived to the packager of track.
func (sess *Session) write(track int, w func(*packager.Track) error) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.closed {
		return errSessionClosed
	}
	if track < 0 || track >= len(sess.tracks) {
		return fmt.Errorf("no track %d", track)
	}
	sess.arrival = time.Now()
	t := sess.tracks[track]
	if err := w(t.pk); err != nil {
		return err
	}
	// A segment that could not be encrypted was not added: the
	// publisher is dropped rather than leave a hole or a clear segment.
	return t.cipher.takeErr()
}

var errSessionClosed = errors.New("session closed")

// onSegment receives a finished segment from a packager.
func (sess *Session) onSegment(rid string, seg *packager.Segment) {
	var disc bool
	for _, t := range sess.tracks {
		if t.rid != rid {
			continue
		}
		if t.cipher != nil {
			var err error
			if seg, err = t.cipher.segment(seg); err != nil {
				sess.log.Error("segment not encrypted: dropped", "rendition", rid, "error", err)
				return
			}
		}
		disc, t.disc = t.disc, false
	}
	sess.st.addSegment(rid, seg, disc, sess.arrival)
}

// onChunk receives a chunk from a packager.
func (sess *Session) onChunk(rid string, c *packager.Chunk) {
	for _, t := range sess.tracks {
		if t.rid == rid && t.cipher != nil {
			if c = t.cipher.chunk(c, t.pk.Info().Timescale); c == nil {
				return
			}
		}
	}
	sess.st.addChunk(rid, c)
}

// Close flushes the last segments and marks the stream ended: the
// publisher stopped. It lingers for Config.Linger, or until a publisher
// resumes it.
func (sess *Session) Close() { sess.end(false) }

// Drop flushes the last segments and leaves the stream live for
// Config.ReconnectWindow: the publisher was lost, and an encoder that
// reconnects in time resumes the stream without its viewers seeing it
// end. Then it ends as after Close.
func (sess *Session) Drop() { sess.end(true) }

func (sess *Session) end(lost bool) {
	sess.closeOnce.Do(func() {
		sess.mu.Lock()
		sess.closed = true
		sess.arrival = time.Now()
		for _, t := range sess.tracks {
			t.pk.Flush()
		}
		sess.mu.Unlock()

		sess.st.detach(sess, lost)
	})
}

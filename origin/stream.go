package origin

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/packager"
)

// entry is one media segment in a rendition's window.
type entry struct {
	seg *packager.Segment
	obj *object
	// disc marks the first segment after a publisher reconnected: the
	// timeline jumped forward and the encoder state is new.
	disc bool
	// listed is false once the segment has left the playlists; it stays
	// retrievable for a while (RFC 8216bis section 6.2.2).
	listed bool
}

// end returns the decode time just after the segment, in its timescale.
func (e *entry) end() int64 { return e.seg.Start + e.seg.Duration }

// rendition is the immutable state of one track of a stream at one moment.
type rendition struct {
	id   string // "v0", "a0": the directory of its files
	info packager.Info
	// ladder marks a rendition made from the source by a transcoder, not
	// sent by the publisher.
	ladder  bool
	init    *object
	entries []*entry // oldest first; the listed ones are a suffix
	// next is the number of the segment being produced.
	next uint64
	// first is the number of the rendition's first segment.
	first uint64
	// targetDuration is the HLS EXT-X-TARGETDURATION: it only grows.
	targetDuration int
	// discSeq counts discontinuities that have left the window.
	discSeq  int
	playlist *lazyObject // nil until the rendition has a listed segment
	// partial is the segment being produced, number next as a rule, whose
	// chunks are streamed to the requests held for it (partial.go); nil
	// until the rendition has a packager.
	partial *partial
	// stalled is, for a ladder rendition whose transcoder has fallen more
	// than stallAfter behind the source, how far; zero while it keeps up.
	// A stalled rendition is left out of the HLS multivariant playlist.
	stalled time.Duration
}

// listed returns the entries the playlists describe.
func (r *rendition) listed() []*entry {
	for i, e := range r.entries {
		if e.listed {
			return r.entries[i:]
		}
	}
	return nil
}

// find returns the entry with segment number n, or nil.
func (r *rendition) find(n uint64) *entry {
	if len(r.entries) == 0 {
		return nil
	}
	first := r.entries[0].seg.Number
	if n < first || n-first >= uint64(len(r.entries)) {
		return nil
	}
	e := r.entries[n-first]
	if e.seg.Number != n { // numbers are consecutive; be safe anyway
		return nil
	}
	return e
}

// snapshot is everything readers need about a stream at one moment. It is
// never modified after being published; a new one replaces it.
type snapshot struct {
	renditions   []*rendition
	multivariant *lazyObject // nil until every rendition has a segment
	mpd          *lazyObject
	ended        bool
	// changed is closed when a newer snapshot replaces this one.
	changed chan struct{}
}

// rendition returns the rendition with id, or nil.
func (s *snapshot) rendition(id string) *rendition {
	for _, r := range s.renditions {
		if r.id == id {
			return r
		}
	}
	return nil
}

// ready reports whether every source rendition has at least one listed
// segment. Ladder renditions join the manifests once they have one.
func (s *snapshot) ready() bool {
	n := 0
	for _, r := range s.renditions {
		if r.ladder {
			continue
		}
		if len(r.listed()) == 0 {
			return false
		}
		n++
	}
	return n > 0
}

// playable returns the renditions the manifests describe: those with a
// listed segment.
func (s *snapshot) playable() []*rendition {
	out := make([]*rendition, 0, len(s.renditions))
	for _, r := range s.renditions {
		if len(r.listed()) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// stream is one live stream: its renditions' windows and manifests.
// Readers load the current snapshot without locking; writers (one publisher
// session at a time) serialise on mu.
type stream struct {
	name  string
	epoch string // path prefix of this stream instance's immutable files
	// epochMillis is the number epoch spells, in base 36.
	epochMillis int64
	// ast is the wall-clock time of timeline zero: the MPD's
	// availabilityStartTime and the base of EXT-X-PROGRAM-DATE-TIME.
	ast     time.Time
	created time.Time
	// pres is the availabilityStartTime of the DASH presentation this
	// instance belongs to: its own ast, or that of the instance it
	// continues (see prior).
	pres time.Time
	// start is where this instance's timeline zero falls in the
	// presentation: its Period@start. It is ast - pres, or later, where the
	// instance it continues has media beyond that: media that ran ahead of
	// the wall clock (an encoder's first seconds arrive in a burst). A
	// Period must not begin before the previous one's media ends, or
	// players never finish the previous one. Set at creation.
	start time.Duration
	// prior are the instances this one continues, oldest first: it took
	// over from a publisher lost mid-stream, or whose video setup
	// changed, before that stream ended. The MPD describes each as an
	// earlier Period, so DASH players go on into this one. Set at
	// creation; guarded by mu (the gone ones are dropped).
	prior []*stream
	// gone is set once the instance is dropped: its files are no longer
	// served, and a later instance's MPD leaves its Period out.
	gone atomic.Bool
	// succ is set when a later instance continues this one: HLS players
	// on this instance's media playlists go on into it (playlist_bridge.go).
	succ atomic.Pointer[succession]
	// bridges caches, per rendition id, this instance's bridged media
	// playlist (a *bridgeCache).
	bridges sync.Map

	snap atomic.Pointer[snapshot]

	mu sync.Mutex
	// session is the publisher feeding the stream, nil once it left; guarded by mu.
	session *Session
	// endTimer drops the stream once it has been over for a while; guarded by mu.
	endTimer *time.Timer
	// sessionStart is when the current or last publisher started, and
	// sessionBase where on the timeline; guarded by mu.
	sessionStart time.Time
	sessionBase  time.Duration
}

// newStream returns a new instance of the stream name, beginning now.
// Its epoch is the millisecond it began, or, when it replaces old, one
// after old's, so that no two instances of a name share their files' URLs
// however fast one replaces the other.
func newStream(name string, now time.Time, old *stream) *stream {
	// The MPD gives times to the millisecond: so is timeline zero.
	now = now.Truncate(time.Millisecond)
	epoch := now.UnixMilli()
	if old != nil {
		epoch = max(epoch, old.epochMillis+1)
	}
	st := &stream{
		name:        name,
		epochMillis: epoch,
		epoch:       strconv.FormatInt(epoch, 36),
		ast:         now,
		pres:        now,
		created:     now,
	}
	st.snap.Store(&snapshot{changed: make(chan struct{})})
	return st
}

// continues makes st the next Period of old's presentation, and the
// continuation of old's HLS media playlists, when old was still live: its
// publisher was lost, or is publishing anew.
func (st *stream) continues(old *stream) {
	if old.snap.Load().ended {
		return // the presentation ended, and its players with it
	}
	st.pres = old.pres
	st.start = max(st.ast.Sub(st.pres), old.start+old.snap.Load().end())
	old.mu.Lock()
	st.prior = append(old.priorLocked(), old)
	old.mu.Unlock()
	old.succ.Store(newSuccession(st, old.snap.Load()))
}

// priorLocked drops the prior instances that are gone and returns the
// others. The returned slice is never modified. The caller holds st.mu.
func (st *stream) priorLocked() []*stream {
	for _, p := range st.prior {
		if p.gone.Load() {
			st.prior = slices.DeleteFunc(slices.Clone(st.prior), func(p *stream) bool { return p.gone.Load() })
			break
		}
	}
	return st.prior[:len(st.prior):len(st.prior)]
}

// publishLocked replaces the snapshot and wakes everyone waiting on the old
// one. The caller holds st.mu.
func (st *stream) publishLocked(next *snapshot) {
	next.changed = make(chan struct{})
	old := st.snap.Swap(next)
	close(old.changed)
}

// end returns the decode time just after the newest segment of any
// rendition, as a duration on the stream timeline.
func (s *snapshot) end() time.Duration {
	var end time.Duration
	for _, r := range s.renditions {
		if n := len(r.entries); n > 0 {
			if d := packager.Duration(r.entries[n-1].end(), r.info.Timescale); d > end {
				end = d
			}
		}
	}
	return end
}

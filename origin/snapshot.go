package origin

// The immutable values the manifests are built from: a stream instance's
// identity (instance) and its state at one moment (snapshot, of
// renditions of entries). None of them is modified once readers can see
// it; a writer builds a new snapshot and publishes it (stream.go).

import (
	"time"

	"github.com/golivestream/live/internal/mediatime"

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
	// delta is the media playlist's delta update (RFC 8216bis 6.2.5.1,
	// _HLS_skip=YES); nil with playlist.
	delta *lazyObject
	// parts are the parts of the segment being produced (partial) so far,
	// oldest first; partTarget is the rendition's EXT-X-PART-INF
	// PART-TARGET, set by its first segment (zero before: no LL-HLS
	// tags). See stream_parts.go.
	parts      []part
	partTarget time.Duration
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

// end returns the decode time just after the newest segment of any
// rendition, as a duration on the stream timeline.
func (s *snapshot) end() time.Duration {
	var end time.Duration
	for _, r := range s.renditions {
		if n := len(r.entries); n > 0 {
			if d := mediatime.Duration(r.entries[n-1].end(), r.info.Timescale); d > end {
				end = d
			}
		}
	}
	return end
}

// instance names one instance of a stream and places it on the wall
// clock and in its DASH presentation. It is filled in when the instance
// is created, before anyone else sees it, and never modified after:
// manifest builders read it without a lock.
type instance struct {
	name  string
	epoch string // path prefix of this instance's immutable files
	// epochMillis is the number epoch spells, in base 36.
	epochMillis int64
	// ast is the wall-clock time of timeline zero: the MPD's
	// availabilityStartTime and the base of EXT-X-PROGRAM-DATE-TIME.
	ast time.Time
	// pres is the availabilityStartTime of the DASH presentation this
	// instance belongs to: its own ast, or that of the instance it
	// continues (stream.continues).
	pres time.Time
	// start is where this instance's timeline zero falls in the
	// presentation: its Period@start. It is ast - pres, or later, where the
	// instance it continues has media beyond that: media that ran ahead of
	// the wall clock (an encoder's first seconds arrive in a burst). A
	// Period must not begin before the previous one's media ends, or
	// players never finish the previous one. It is also where that media
	// ends when ast - pres is later by no more than periodJitter: the
	// media follows on, without a gap.
	start time.Duration
	// keys are the keys of an encrypted instance (protect.go); nil for a
	// clear one.
	keys *streamKeys
}

// view is an instance with its snapshot at one moment: what the MPD of a
// presentation is a function of, one view per Period.
type view struct {
	*instance
	snap *snapshot
}

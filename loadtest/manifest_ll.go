package loadtest

import (
	"errors"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// llPlaylist is what an LL-HLS media playlist (RFC 8216bis) adds to its
// segments: the parts of its last segments and of the segment being
// produced, the next part hinted, and what the server can do. Immutable
// once built, shared by players, like its segmentList.
type llPlaylist struct {
	partTarget time.Duration // EXT-X-PART-INF PART-TARGET
	// holdBack is PART-HOLD-BACK: how far behind the playlist's end a
	// player in low-latency mode starts. Three part targets when the
	// playlist says none (RFC 8216bis 4.4.3.8: at least two, three
	// recommended).
	holdBack time.Duration
	canBlock bool // CAN-BLOCK-RELOAD=YES: _HLS_msn and _HLS_part are honoured
	canSkip  bool // CAN-SKIP-UNTIL: _HLS_skip=YES gives delta updates
	delta    bool // this playlist is a delta update (EXT-X-SKIP)
	// parts are the parts listed, in order: those of listed segments,
	// then those of the segment being produced, numbered listEnd.
	parts []llPart
	// hint is the part EXT-X-PRELOAD-HINT names: the next one, after the
	// last part listed; hasHint is false without a hint.
	hint    partPos
	hintURI string
	hasHint bool
}

// partPos names a part: its segment's media sequence number and its index
// in the segment, from 0.
type partPos struct {
	msn   uint64
	index int
}

// before reports whether p comes before q.
func (p partPos) before(q partPos) bool {
	return p.msn < q.msn || p.msn == q.msn && p.index < q.index
}

// after returns the part after p in the same segment.
func (p partPos) after() partPos { return partPos{p.msn, p.index + 1} }

// llPart is one EXT-X-PART.
type llPart struct {
	partPos
	duration    time.Duration
	uri         string
	independent bool
	date        time.Time // when it began on ingest's wall clock; zero when undated
}

// lowLatency fills l.ll from pl's LL-HLS tags: none without
// EXT-X-PART-INF.
func lowLatency(l *segmentList, pl *playlist.Media) error {
	if pl.PartInf == nil {
		return nil
	}
	ll := &llPlaylist{partTarget: pl.PartInf.PartTarget, delta: pl.Skip != nil}
	if ll.partTarget <= 0 {
		return errors.New("PART-TARGET is not positive")
	}
	ll.holdBack = 3 * ll.partTarget
	if sc := pl.ServerControl; sc != nil {
		ll.canBlock = sc.CanBlockReload
		ll.canSkip = sc.CanSkipUntil != nil && *sc.CanSkipUntil > 0
		if sc.PartHoldBack != nil && *sc.PartHoldBack > 0 {
			ll.holdBack = *sc.PartHoldBack
		}
	}
	add := func(msn uint64, parts []*playlist.MediaPart, date time.Time) error {
		for i, p := range parts {
			if p == nil || p.URI == "" {
				return errors.New("empty EXT-X-PART")
			}
			lp := llPart{partPos: partPos{msn, i}, duration: p.Duration, uri: p.URI, independent: p.Independent}
			if !date.IsZero() {
				lp.date = date
				date = date.Add(p.Duration)
			}
			ll.parts = append(ll.parts, lp)
		}
		return nil
	}
	for i, s := range pl.Segments {
		var date time.Time
		if l.dates != nil {
			date = l.dates[i]
		}
		if err := add(l.first+uint64(i), s.Parts, date); err != nil {
			return err
		}
	}
	// The segment being produced has no URI yet: its parts follow the
	// last segment, and so does its date.
	end := listEnd(l)
	var date time.Time
	if n := len(l.durations); l.dates != nil && n > 0 {
		date = l.dates[n-1].Add(l.durations[n-1])
	}
	if err := add(end, pl.Parts, date); err != nil {
		return err
	}
	if len(ll.parts) > maxListed {
		return errors.New("too many parts")
	}
	// RFC 8216bis 4.4.5.3: a part hint is for the part after the last
	// one listed: the next of the segment being produced.
	if h := pl.PreloadHint; h != nil && h.URI != "" {
		ll.hint, ll.hintURI, ll.hasHint = partPos{end, len(pl.Parts)}, h.URI, true
	}
	l.ll = ll
	return nil
}

// part returns listed part p.
func (l *segmentList) part(p partPos) (*llPart, bool) {
	parts := l.ll.parts
	for i := len(parts) - 1; i >= 0; i-- { // players ask near the end
		switch q := parts[i].partPos; {
		case q == p:
			return &parts[i], true
		case q.msn < p.msn:
			return nil, false
		}
	}
	return nil, false
}

// partsOf counts the listed parts of segment msn.
func (l *segmentList) partsOf(msn uint64) int {
	n := 0
	for i := len(l.ll.parts) - 1; i >= 0 && l.ll.parts[i].msn >= msn; i-- {
		if l.ll.parts[i].msn == msn {
			n++
		}
	}
	return n
}

// llStep is what a player in low-latency mode does next.
type llStep int

const (
	stepPart    llStep = iota // fetch the listed part
	stepSegment               // fetch the whole segment: its parts are no longer listed
	stepHint                  // fetch the hinted part: held until it is produced
	stepReload                // reload the playlist, held until it lists the part
	stepBehind                // the part fell out of the playlist
)

// llNext returns what to do for part p, and the part it is for: p
// itself, or the first part of the next segment when p is past the last
// part of a finished segment (a hint for a part that never came).
func (l *segmentList) llNext(p partPos) (llStep, partPos) {
	for l.ll != nil && l.listed(p.msn) {
		n := l.partsOf(p.msn)
		if n == 0 || p.index < n {
			break
		}
		p = partPos{p.msn + 1, 0}
	}
	switch {
	case p.msn < l.first:
		return stepBehind, p
	case l.ll != nil:
		if _, ok := l.part(p); ok {
			return stepPart, p
		}
	}
	switch {
	case l.listed(p.msn):
		return stepSegment, p
	case l.ll != nil && l.ll.hasHint && l.ll.hint == p:
		return stepHint, p
	}
	return stepReload, p
}

// edgeBack returns how long before the playlist's end (the end of its
// last part, or of its last segment) part i begins.
func (l *segmentList) edgeBack(i int) time.Duration {
	var d time.Duration
	for _, p := range l.ll.parts[i:] {
		d += p.duration
	}
	return d
}

// llEdge returns when the playlist's end is on ingest's wall clock, and
// whether the playlist says (it is dated).
func (l *segmentList) llEdge() (time.Time, bool) {
	if n := len(l.ll.parts); n > 0 && !l.ll.parts[n-1].date.IsZero() {
		p := l.ll.parts[n-1]
		return p.date.Add(p.duration), true
	}
	return time.Time{}, false
}

// llStart returns where a player in low-latency mode starts, as hls.js
// does in lowLatencyMode: at back before the playlist's end, loading from
// the last independent part that begins there or before it, and playing
// from back (skip is the media of that part before the start, which
// the player does not play). Without an independent part that early, it
// starts at the first listed. ok is false without parts.
func (l *segmentList) llStart(back time.Duration) (p partPos, skip time.Duration, ok bool) {
	parts := l.ll.parts
	if len(parts) == 0 {
		return partPos{}, 0, false
	}
	first := -1
	for i := len(parts) - 1; i >= 0; i-- {
		if !parts[i].independent {
			continue
		}
		first = i
		if from := l.edgeBack(i); from >= back {
			return parts[i].partPos, from - back, true
		}
	}
	if first < 0 {
		first = 0
	}
	return parts[first].partPos, 0, true
}

package loadtest

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// variant is one rendition a player may choose from an entry manifest.
type variant struct {
	bandwidth int // bits per second, as the manifest says
	// id is the media playlist URI relative to the multivariant playlist
	// (HLS), or the Representation id (DASH).
	id string
	// audio is the same for the audio rendition to play with it; empty
	// when there is none.
	audio string
}

// entry is a parsed multivariant playlist or MPD. Immutable once built,
// shared by every player that got the same bytes.
type entry struct {
	variants []variant // in the manifest's order
	// lists are the MPD's Representations by id; nil for HLS, whose
	// media playlists are fetched on their own.
	lists map[string]*segmentList
}

// segmentList is what one media playlist, or one Representation of an
// MPD, lists. Immutable once built, shared by players.
type segmentList struct {
	first     uint64 // number of the first listed segment
	durations []time.Duration
	uris      []string // HLS: one per segment
	media     string   // DASH: the media template, $Number$ left to fill
	init      string   // the init segment's URI; empty when none
	// ended says that no segment will be added: EXT-X-ENDLIST, or a
	// static MPD.
	ended bool
	// refresh is how often to reload: the target duration (HLS) or
	// minimumUpdatePeriod (DASH).
	refresh time.Duration
	// dates are when each listed segment began on ingest's wall clock
	// (HLS: EXT-X-PROGRAM-DATE-TIME, an undated segment following the one
	// before it); nil when the playlist dates none, and for DASH, whose
	// segments are dated by dash.
	dates []time.Time
	// ll is what an LL-HLS playlist adds (manifest_ll.go); nil without
	// EXT-X-PART-INF.
	ll *llPlaylist
	// dash is the timing of a DASH Representation (manifest_dash.go); nil
	// for HLS.
	dash *dashTiming
}

// listed reports whether segment n is in the list.
func (l *segmentList) listed(n uint64) bool {
	return n >= l.first && n-l.first < uint64(len(l.durations))
}

// whole returns when listed segment n is complete and may be asked for
// by a player that is not in low-latency mode: for DASH, its
// availability start on the MPD's timeline (ISO/IEC 23009-1 5.3.9.5.3),
// at its end, less availabilityTimeOffset unless
// @availabilityTimeComplete is false (then the offset says when its
// first chunk is, not when it is complete). The zero time for HLS,
// whose playlists list complete segments alone, and for an MPD without
// availabilityStartTime.
func (l *segmentList) whole(n uint64) time.Time {
	d := l.dash
	if d == nil || d.availZero.IsZero() {
		return time.Time{}
	}
	i := n - l.first
	at := d.avail(d.starts[i] + l.durations[i])
	if !d.chunked {
		at = at.Add(-d.availOffset)
	}
	return at
}

// duration returns the duration of listed segment n.
func (l *segmentList) duration(n uint64) time.Duration { return l.durations[n-l.first] }

// uri returns the URI of listed segment n, relative to the list's URL.
func (l *segmentList) uri(n uint64) string {
	if l.uris != nil {
		return l.uris[n-l.first]
	}
	return fillNumber(l.media, n)
}

// wallEnd returns when listed segment n ends on ingest's wall clock, and
// whether the list says.
func (l *segmentList) wallEnd(n uint64) (time.Time, bool) {
	i := n - l.first
	switch {
	case l.dates != nil:
		return l.dates[i].Add(l.durations[i]), true
	case l.dash != nil && l.dash.dated():
		return l.dash.wall(l.dash.starts[i] + l.durations[i]), true
	}
	return time.Time{}, false
}

// liveStart returns the number a player starts at: three segments behind
// the live edge, as hls.js (liveSyncDurationCount) and our MPD's
// suggestedPresentationDelay do; the first one of a shorter list.
func (l *segmentList) liveStart() uint64 {
	return l.first + uint64(max(len(l.durations)-3, 0))
}

// fillNumber substitutes n for $Number$ (or $Number%0Wd$) in a DASH
// template (ISO/IEC 23009-1 5.3.9.4.4).
func fillNumber(tpl string, n uint64) string {
	i := strings.Index(tpl, "$Number")
	if i < 0 {
		return tpl
	}
	rest := tpl[i+len("$Number"):]
	j := strings.IndexByte(rest, '$')
	if j < 0 {
		return tpl
	}
	num := strconv.FormatUint(n, 10)
	if f := rest[:j]; strings.HasPrefix(f, "%0") && strings.HasSuffix(f, "d") {
		if w, err := strconv.Atoi(f[2 : len(f)-1]); err == nil && w > len(num) && w <= 32 {
			num = strings.Repeat("0", w-len(num)) + num
		}
	}
	return tpl[:i] + num + rest[j+1:]
}

// memoSize bounds the parsed manifests kept; the memo starts over when full.
const memoSize = 512

// memo keeps parsed manifests by their bytes: the players of one
// rendition fetch the same playlist, so each distinct body is parsed once.
// It is safe for concurrent use.
type memo struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64]memoEntry // guarded by mu
}

type memoEntry struct {
	kind string
	body string
	val  any
}

func newMemo() *memo { return &memo{seed: maphash.MakeSeed(), m: map[uint64]memoEntry{}} }

// parseMemo returns parse(body), from the memo when the same kind of body
// was parsed before; fresh says it was not. Errors are not kept.
func parseMemo[T any](m *memo, kind string, body []byte, parse func([]byte) (T, error)) (v T, fresh bool, err error) {
	h := maphash.Bytes(m.seed, body)
	m.mu.Lock()
	e, ok := m.m[h]
	m.mu.Unlock()
	if ok && e.kind == kind && e.body == string(body) {
		return e.val.(T), false, nil
	}
	v, err = parse(body)
	if err != nil {
		return v, false, err
	}
	m.mu.Lock()
	if len(m.m) >= memoSize {
		clear(m.m)
	}
	m.m[h] = memoEntry{kind: kind, body: string(body), val: v}
	m.mu.Unlock()
	return v, true, nil
}

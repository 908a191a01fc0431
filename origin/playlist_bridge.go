package origin

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/packager"
)

// A stream instance that a later one continues (stream.continues: its
// publisher was lost, or changed its video setup mid-stream) keeps its
// HLS media playlists open: they go on into the later instance's
// segments after an EXT-X-DISCONTINUITY and an EXT-X-MAP of the new init
// segment (RFC 8216bis 4.4.4.3, 4.4.4.5), so that a player holding the
// earlier instance's playlists plays on instead of meeting EXT-X-ENDLIST.
// This is HLS's counterpart of the MPD's next Period. A video rendition
// goes on with the later instance's video rendition of the same height,
// or of the nearest height; audio with the audio of the same id, or the
// first. The media sequence numbers and the discontinuity sequence go on
// across the chain of instances.

// succession records that a later instance took over from a live one.
// It is immutable but for mapped.
type succession struct {
	to *stream
	// from is, per rendition of the earlier instance, what its successor
	// is chosen by, and the number after its last segment when to took
	// over: a segment a transcoder flushes later is not bridged, so that
	// the numbers after it never move.
	from map[string]handedOver
	// ladder is set when the earlier instance had a transcoding ladder:
	// the later one's rungs are waited for a while (bridgeGrace).
	ladder bool

	mu sync.Mutex
	// mapped is the rendition of to that each rendition's players go on
	// with, once decided ("" for none); guarded by mu.
	mapped map[string]string
}

// handedOver is a rendition of an instance as a later one took over.
type handedOver struct {
	next   uint64
	height int // 0 for audio
	ladder bool
}

func newSuccession(to *stream, from *snapshot) *succession {
	s := &succession{to: to, from: make(map[string]handedOver, len(from.renditions)), mapped: make(map[string]string)}
	for _, r := range from.renditions {
		s.from[r.id] = handedOver{next: r.next, height: r.info.Height, ladder: r.ladder}
		s.ladder = s.ladder || r.ladder
	}
	return s
}

// bridgeGrace is how many segment durations of media a later instance
// may have before a rung of the height a rendition needs is taken as one
// it will not get: its transcoder adds its rungs within about a second.
const bridgeGrace = 3

// successor returns the rendition of s.to that the players of rendition
// rid go on with, and false while that is not decided yet. "" means none:
// the later instance has nothing of rid's kind. A video rendition goes on
// with one of the same height as soon as there is one; otherwise, once
// the later instance's ladder had its time (or there is none to wait
// for), with the nearest height, the lower of two equally near.
func (s *succession) successor(rid string, segment time.Duration) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.mapped[rid]; ok {
		return id, true
	}
	snap := s.to.snap.Load()
	from := s.from[rid]
	settled := !s.ladder || snap.ended || s.to.gone.Load() || snap.end() >= bridgeGrace*segment
	var pick *rendition
	if kindOf(rid) == "audio" {
		if pick = snap.rendition(rid); pick == nil {
			for _, r := range snap.renditions {
				if kindOf(r.id) == "audio" {
					pick = r
					break
				}
			}
		}
	} else {
		dist := func(r *rendition) int { return abs(r.info.Height - from.height) }
		for _, r := range snap.renditions {
			if !r.info.Video {
				continue
			}
			switch {
			case pick == nil, dist(r) < dist(pick),
				dist(r) == dist(pick) && r.info.Height < pick.info.Height,
				r.info.Height == pick.info.Height && r.ladder == from.ladder && pick.ladder != from.ladder:
				pick = r
			}
		}
		if pick != nil && dist(pick) != 0 && !settled {
			return "", false
		}
	}
	if pick == nil && !settled {
		return "", false
	}
	id := ""
	if pick != nil {
		id = pick.id
	}
	s.mapped[rid] = id
	return id, true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// bridgeLink is one instance of the chain a bridged playlist walks.
type bridgeLink struct {
	st *stream
	r  *rendition
	// entries are the ones the playlist may list: listed in the
	// instance's own window, before its successor took over, with its
	// files still served.
	entries []*entry
	// off is what to add to a segment's number to get its media sequence
	// number in the bridged playlist.
	off int64
	// before counts the discontinuities of the bridged playlist before
	// the instance's first segment, not the one at it.
	before int
}

// discsBefore counts the discontinuities of the bridged playlist before
// entry e of link k.
func (l *bridgeLink) discsBefore(k int, e *entry) int {
	n := l.before + droppedDiscs(l.r)
	if k > 0 && e.seg.Number > l.r.first {
		n++ // the one at the instance's first segment
	}
	for _, o := range l.r.entries {
		if o.seg.Number >= e.seg.Number {
			break
		}
		if o.disc {
			n++
		}
	}
	return n
}

// droppedDiscs counts r's discontinuities at segments no longer kept.
func droppedDiscs(r *rendition) int {
	n := r.discSeq // those that left the window, kept or not
	for _, e := range r.entries {
		if !e.listed && e.disc {
			n--
		}
	}
	return n
}

// bridgeChain returns the instances that rendition rid of st goes on
// into, st first, and whether the last of them ended that rendition.
func (s *Server) bridgeChain(st *stream, rid string) ([]bridgeLink, bool) {
	var links []bridgeLink
	var off int64
	before := 0
	for cur := st; ; {
		snap := cur.snap.Load()
		r := snap.rendition(rid)
		if r == nil {
			return links, true
		}
		succ := cur.succ.Load()
		limit := r.next
		if succ != nil {
			if h, ok := succ.from[rid]; ok {
				limit = min(limit, h.next)
			}
		}
		l := bridgeLink{st: cur, r: r, off: off, before: before}
		if !cur.gone.Load() {
			for _, e := range r.entries {
				if e.listed && e.seg.Number < limit {
					l.entries = append(l.entries, e)
				}
			}
		}
		links = append(links, l)
		if succ == nil {
			return links, snap.ended
		}
		next, ok := succ.successor(rid, s.cfg.SegmentDuration)
		if !ok {
			return links, false
		}
		nr := succ.to.snap.Load().rendition(next)
		if nr == nil {
			return links, true
		}
		// The next instance's numbers and discontinuities follow all of
		// this one's.
		before += droppedDiscs(r)
		for _, e := range r.entries {
			if e.disc && e.seg.Number < limit {
				before++
			}
		}
		if len(links) > 1 && limit > r.first {
			before++ // the one at this instance's first segment
		}
		off += int64(limit) - int64(nr.first)
		cur, rid = succ.to, next
	}
}

// bridgedPlaylist renders the media playlist of rendition rid of st, an
// instance that a later one continues: its last Window of media across
// the chain of instances. It returns nil when that lists nothing.
func (s *Server) bridgedPlaylist(st *stream, rid string) []byte {
	links, ended := s.bridgeChain(st, rid)
	type item struct{ link, idx int }
	var items []item // newest first
	var total time.Duration
collect:
	for k := len(links) - 1; k >= 0; k-- {
		es := links[k].entries
		for i := len(es) - 1; i >= 0; i-- {
			d := packager.Duration(es[i].seg.Duration, es[i].seg.Timescale)
			if len(items) > 0 && total+d > s.cfg.Window {
				break collect
			}
			total += d
			items = append(items, item{k, i})
		}
	}
	if len(items) == 0 {
		return nil
	}

	first := items[len(items)-1]
	l0 := &links[first.link]
	e0 := l0.entries[first.idx]
	pl := playlist.Media{
		Version:             hlsVersion,
		IndependentSegments: true,
		MediaSequence:       int(int64(e0.seg.Number) + l0.off),
		Map:                 &playlist.MediaMap{URI: bridgeURI(st, l0, "init.mp4")},
		Endlist:             ended,
	}
	for _, l := range links {
		pl.TargetDuration = max(pl.TargetDuration, l.r.targetDuration)
	}
	ds := l0.discsBefore(first.link, e0)
	maps := make(map[int]string) // segment index → its EXT-X-MAP
	prev := first.link
	for j := len(items) - 1; j >= 0; j-- {
		it := items[j]
		l := &links[it.link]
		e := l.entries[it.idx]
		disc := e.disc || (it.link > 0 && e.seg.Number == l.r.first)
		if it.link != prev {
			disc = true
			maps[len(pl.Segments)] = bridgeURI(st, l, "init.mp4")
			prev = it.link
		}
		pdt := l.st.ast.Add(packager.Duration(e.seg.Start, e.seg.Timescale)).UTC()
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{
			Duration:      packager.Duration(e.seg.Duration, e.seg.Timescale),
			URI:           bridgeURI(st, l, segmentPath(e.seg.Number)),
			Discontinuity: disc,
			DateTime:      &pdt,
		})
	}
	if ds > 0 || len(maps) > 0 || hasDisc(l0.entries) {
		pl.DiscontinuitySequence = &ds
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Media cannot fail
	return insertMaps(b, maps)
}

// bridgeURI is the URI of file of link l's rendition, relative to the
// directory of st's media playlist.
func bridgeURI(st *stream, l *bridgeLink, file string) string {
	if l.st == st {
		return file
	}
	return "../../" + l.st.epoch + "/" + l.r.id + "/" + file
}

// insertMaps adds, after the EXT-X-DISCONTINUITY of segment i of the
// playlist b, an EXT-X-MAP of maps[i]: gohlslib writes one EXT-X-MAP, in
// the header.
func insertMaps(b []byte, maps map[int]string) []byte {
	if len(maps) == 0 {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + 64*len(maps))
	seg := 0
	for line := range bytes.Lines(b) {
		out.Write(line)
		switch {
		case bytes.Equal(bytes.TrimSpace(line), []byte("#EXT-X-DISCONTINUITY")):
			if uri, ok := maps[seg]; ok {
				out.WriteString("#EXT-X-MAP:URI=" + strconv.Quote(uri) + "\n")
			}
		case len(line) > 0 && line[0] != '#' && len(bytes.TrimSpace(line)) > 0:
			seg++ // a segment's URI ends it
		}
	}
	return out.Bytes()
}

// bridgeCache is an instance's bridged media playlist of one rendition,
// for the snapshot of the chain's newest instance it was built from.
type bridgeCache struct {
	newest *snapshot
	obj    *lazyObject
}

// bridged returns st's bridged media playlist of rendition rid, built
// once per snapshot of the newest instance of its chain; nil when it
// lists nothing.
func (s *Server) bridged(st *stream, rid string) *object {
	snap := newestOf(st).snap.Load()
	for {
		v, _ := st.bridges.Load(rid)
		if c, ok := v.(*bridgeCache); ok && c.newest == snap {
			return c.obj.get()
		}
		c := &bridgeCache{newest: snap, obj: newLazy(func() *object {
			body := s.bridgedPlaylist(st, rid)
			if body == nil {
				return nil
			}
			return newObject(body, typeM3U8, time.Now(), false)
		})}
		if v == nil {
			if _, loaded := st.bridges.LoadOrStore(rid, c); !loaded {
				return c.obj.get()
			}
		} else if st.bridges.CompareAndSwap(rid, v, c) {
			return c.obj.get()
		}
	}
}

// strip drops st's segments, once its files are no longer served, and
// keeps what its bridged playlists need of its renditions.
func (st *stream) strip() {
	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.snap.Load()
	next := &snapshot{ended: prev.ended}
	for _, r := range prev.renditions {
		c := *r
		c.discSeq = droppedDiscs(r)
		for _, e := range r.entries {
			if e.disc {
				c.discSeq++
			}
		}
		c.entries, c.partial, c.playlist = nil, nil, nil
		next.renditions = append(next.renditions, &c)
	}
	st.publishLocked(next)
}

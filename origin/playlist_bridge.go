package origin

import (
	"bytes"
	"strconv"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
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
//
// This file renders such a playlist, by pure functions of the chain of
// instances as it stood at one moment (chainLink); stream_bridge.go
// resolves the chain, decides the successors and caches the playlists.

// chainLink is one instance of the chain a bridged playlist walks, as
// the chain stood at one moment.
type chainLink struct {
	in *instance
	// r is the rendition of the instance that the chain goes on with, in
	// the instance's snapshot of that moment.
	r *rendition
	// limit is the number after the last segment of r the chain may
	// list: r.next, or where the next instance took over.
	limit uint64
	// gone is set when the instance's files are no longer served.
	gone bool
}

// bridgeLink is one instance of the chain a bridged playlist walks, with
// what the playlist takes of it.
type bridgeLink struct {
	chainLink
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

// bridgeLinks returns what the bridged playlist takes of each instance
// of chain: the numbers and discontinuities of an instance follow all of
// those of the instances before it.
func bridgeLinks(chain []chainLink) []bridgeLink {
	links := make([]bridgeLink, len(chain))
	var off int64
	before := 0
	for k, c := range chain {
		l := bridgeLink{chainLink: c, off: off, before: before}
		if !c.gone {
			for _, e := range c.r.entries {
				if e.listed && e.seg.Number < c.limit {
					l.entries = append(l.entries, e)
				}
			}
		}
		links[k] = l
		if k+1 == len(chain) {
			break
		}
		before += droppedDiscs(c.r)
		for _, e := range c.r.entries {
			if e.disc && e.seg.Number < c.limit {
				before++
			}
		}
		if k > 0 && c.limit > c.r.first {
			before++ // the one at this instance's first segment
		}
		off += int64(c.limit) - int64(chain[k+1].r.first)
	}
	return links
}

// bridgedPlaylist renders the media playlist of the rendition chain[0].r
// of an instance that a later one continues: its last window of media
// across chain, ended (EXT-X-ENDLIST) when the chain's last instance
// ended that rendition. It returns nil when that lists nothing. It is a
// pure function of its arguments.
func bridgedPlaylist(chain []chainLink, ended bool, window time.Duration) []byte {
	links := bridgeLinks(chain)
	type item struct{ link, idx int }
	var items []item // newest first
	var total time.Duration
collect:
	for k := len(links) - 1; k >= 0; k-- {
		es := links[k].entries
		for i := len(es) - 1; i >= 0; i-- {
			d := mediatime.Duration(es[i].seg.Duration, es[i].seg.Timescale)
			if len(items) > 0 && total+d > window {
				break collect
			}
			total += d
			items = append(items, item{k, i})
		}
	}
	if len(items) == 0 {
		return nil
	}

	self := chain[0].in
	first := items[len(items)-1]
	l0 := &links[first.link]
	e0 := l0.entries[first.idx]
	pl := playlist.Media{
		Version:             hlsVersion,
		IndependentSegments: true,
		MediaSequence:       int(int64(e0.seg.Number) + l0.off),
		Map:                 &playlist.MediaMap{URI: bridgeURI(self, l0, "init.mp4")},
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
			maps[len(pl.Segments)] = bridgeURI(self, l, "init.mp4")
			prev = it.link
		}
		pdt := l.in.ast.Add(mediatime.Duration(e.seg.Start, e.seg.Timescale)).UTC()
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{
			Duration:      mediatime.Duration(e.seg.Duration, e.seg.Timescale),
			URI:           bridgeURI(self, l, segmentPath(e.seg.Number)),
			Discontinuity: disc,
			DateTime:      &pdt,
			Key:           bridgeKey(l.in, e, len(pl.Segments) > 0 && pl.Segments[len(pl.Segments)-1].Key != nil),
		})
	}
	if ds > 0 || len(maps) > 0 || hasDisc(l0.entries) {
		pl.DiscontinuitySequence = &ds
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Media cannot fail
	return insertMaps(bridgeKeys(b, links), maps)
}

// bridgeURI is the URI of file of link l's rendition, relative to the
// directory of the media playlist of instance self.
func bridgeURI(self *instance, l *bridgeLink, file string) string {
	if l.in == self {
		return file
	}
	return "../../" + l.in.epoch + "/" + l.r.id + "/" + file
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

package origin

import (
	"slices"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/golivestream/live/packager"
)

// part is one CMAF chunk (moof+mdat) of a segment: an LL-HLS part
// (RFC 8216bis 4.4.4.9), served as /{n}.{p}.m4s (internal/layout) and
// listed in the media playlists as the segment is produced.
type part struct {
	offset, size int   // its bytes within the segment's
	start        int64 // its decode time, in ticks of the rendition's timescale
	duration     int64 // in ticks of the rendition's timescale
	independent  bool  // it starts with a sync sample
}

// partsOf returns the parts of a complete segment.
func partsOf(seg *packager.Segment) []part {
	out := make([]part, len(seg.Chunks))
	for i, c := range seg.Chunks {
		out[i] = part{offset: c.Offset, size: c.Size, start: c.Start, duration: c.Duration, independent: c.Independent}
	}
	return out
}

// partTargetOf is the EXT-X-PART-INF PART-TARGET of a rendition whose
// first segment is seg: the longest of its chunks, with a margin of 2%
// for timestamp jitter, rounded up to 10 ms. The packager closes a chunk
// at the first sample at or after its target duration (250 ms), so a
// chunk lasts less than the target plus one frame, and at a steady frame
// rate the first segment's chunks are as long as any later one. It does
// not change for the rendition's life (RFC 8216bis 4.4.3.7).
func partTargetOf(seg *packager.Segment) time.Duration {
	var longest int64
	for _, c := range seg.Chunks {
		longest = max(longest, c.Duration)
	}
	d := mediatime.Duration(longest, seg.Timescale) * 102 / 100
	const step = 10 * time.Millisecond
	return (d + step - 1) / step * step
}

// addChunk hands a chunk of the segment rendition rid is producing to the
// requests held for that segment, and publishes a snapshot that lists it
// as a part, waking the blocking playlist reloads and part requests that
// wait for it. The playlist listing the part is made before the part's
// bytes go out, and published right after: a cache that gets the bytes
// (a PoP filling the segment) and then asks for the playlist gets one
// that lists them, never one whose preload hint still names the part.
func (st *stream) addChunk(rid string, c *packager.Chunk) {
	r := st.snap.Load().rendition(rid)
	if r == nil || r.partial == nil || r.partial.number != c.SegmentNumber {
		return
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.snap.Load()
	i := slices.IndexFunc(prev.renditions, func(r *rendition) bool { return r.id == rid })
	if i < 0 || prev.renditions[i].partial == nil || prev.renditions[i].partial.number != c.SegmentNumber {
		r.partial.add(c.Segment)
		return
	}
	next := *prev
	next.renditions = slices.Clone(prev.renditions)
	cr := *prev.renditions[i]
	cr.parts = append(slices.Clip(cr.parts), part{
		offset:      len(c.Segment) - len(c.Data),
		size:        len(c.Data),
		start:       c.Start,
		duration:    c.Duration,
		independent: c.Independent,
	})
	next.renditions[i] = &cr
	st.playlistLocked(&next, i, time.Now())
	r.partial.add(c.Segment)
	st.publishLocked(&next)
}

// findPart returns the bytes of part p of segment n of r, and whether
// they are final: nil while the part is not produced yet. gone reports
// that it never will be (the segment ended with fewer parts, or left the
// window).
func (r *rendition) findPart(n uint64, p int) (body []byte, gone bool) {
	if e := r.find(n); e != nil {
		if p >= len(e.seg.Chunks) {
			return nil, true
		}
		c := e.seg.Chunks[p]
		return e.seg.Data[c.Offset : c.Offset+c.Size : c.Offset+c.Size], false
	}
	switch {
	case n < r.next:
		return nil, true // expired, or never produced
	case n > r.next || r.partial == nil || r.partial.number != n || p >= len(r.parts):
		return nil, false // not yet
	}
	pt := r.parts[p]
	soFar, _, _, _ := r.partial.Next(0)
	if len(soFar) < pt.offset+pt.size {
		return nil, false
	}
	return soFar[pt.offset : pt.offset+pt.size : pt.offset+pt.size], false
}

package origin

import (
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mediatime"
)

// Low-Latency HLS (RFC 8216bis): a live media playlist lists the parts of
// its last segments and of the segment being produced, hints the next
// part, reports the other renditions' newest parts, and may be asked for
// by a blocking reload or as a delta update (server_ll.go). Players that
// know nothing of it ignore these tags and play the same segments.
//
// Parts have URLs of their own, {n}.{p}.m4s, rather than byte ranges of
// the segment's URL: hls.js, gohlslib and AVPlayer all fetch a hinted part
// by its URL, while a byte-range hint of unknown length (the part is not
// produced yet) is skipped by some players and fetched whole by others.
// Our PoPs still store each byte once: they answer a part from the
// segment they hold or are filling (pop: the part is a run of boxes of
// the segment), so a part costs no cache space of its own.

// partHoldBackParts is PART-HOLD-BACK in part targets: RFC 8216bis 4.4.3.8
// asks for at least two and recommends three.
const partHoldBackParts = 3

// partWindow is how far back from the playlist's end segments list their
// parts, in target durations: RFC 8216bis 4.4.4.9 has them removed once
// more than three target durations old.
const partWindow = 3

// skipBoundaryTargets is CAN-SKIP-UNTIL in target durations: at least six
// (RFC 8216bis 4.4.3.8).
const skipBoundaryTargets = 6

// lowLatency adds the LL-HLS tags to pl, the media playlist of r in
// snapshot sn whose listed entries are listed, and makes it a delta
// update when skip. A rendition without a part target yet (no segment
// with chunks) gets none.
func lowLatency(pl *playlist.Media, r *rendition, sn *snapshot, listed []*entry, skip bool) {
	if r.partTarget == 0 {
		return
	}
	target := time.Duration(r.targetDuration) * time.Second
	holdBack := partHoldBackParts * r.partTarget
	skipUntil := skipBoundaryTargets * target
	pl.PartInf = &playlist.MediaPartInf{PartTarget: r.partTarget}
	pl.ServerControl = &playlist.MediaServerControl{
		CanBlockReload: true,
		PartHoldBack:   &holdBack,
		CanSkipUntil:   &skipUntil,
	}

	// Ages are measured from the playlist's end, in its durations (the
	// EXTINF and part durations, not the timeline, which a reconnection
	// makes jump): fromEnd[i] is how long before the end segment i ends.
	ts := r.info.Timescale
	var tail int64
	for _, p := range r.parts {
		tail += p.duration
	}
	fromEnd := make([]int64, len(listed))
	for i := len(listed) - 1; i >= 0; i-- {
		fromEnd[i] = tail
		tail += listed[i].seg.Duration
	}
	partWindowTicks := mediatime.Ticks(partWindow*target, ts)
	for i, e := range listed {
		if fromEnd[i]+e.seg.Duration > partWindowTicks {
			continue // it began more than the window before the end
		}
		for p, pt := range partsOf(e.seg) {
			pl.Segments[i].Parts = append(pl.Segments[i].Parts, &playlist.MediaPart{
				Duration:    mediatime.Duration(pt.duration, ts),
				URI:         layout.PartPath(e.seg.Number, p),
				Independent: pt.independent,
			})
		}
	}
	for p, pt := range r.parts {
		pl.Parts = append(pl.Parts, &playlist.MediaPart{
			Duration:    mediatime.Duration(pt.duration, ts),
			URI:         layout.PartPath(r.next, p),
			Independent: pt.independent,
		})
	}
	// RFC 8216bis 4.4.5.3: the hint is for the next part, which the
	// server holds a request for until it is produced.
	pl.PreloadHint = &playlist.MediaPreloadHint{URI: layout.PartPath(r.next, len(r.parts))}

	for _, o := range sn.playable() {
		if o.id == r.id || o.partTarget == 0 {
			continue
		}
		msn, part := lastPart(o)
		pl.RenditionReport = append(pl.RenditionReport, &playlist.MediaRenditionReport{
			URI: "../" + o.id + "/index.m3u8", LastMSN: int(msn), LastPart: &part,
		})
	}

	if skip {
		// RFC 8216bis 6.2.5.1: a delta update skips the segments older
		// than the skip boundary, EXT-X-SKIP standing for them.
		boundary := mediatime.Ticks(skipUntil, ts)
		n := 0
		for n < len(listed) && fromEnd[n] >= boundary && !listed[n].disc {
			n++
		}
		if n > 0 {
			pl.Skip = &playlist.MediaSkip{SkippedSegments: n}
			pl.Segments = pl.Segments[n:]
		}
	}
}

// lastPart is where r's playlist ends, as an EXT-X-RENDITION-REPORT says
// it (RFC 8216bis 4.4.5.4): the segment being produced and its last part,
// or, before its first part, the last segment and its last part.
func lastPart(r *rendition) (msn uint64, part int) {
	if len(r.parts) > 0 {
		return r.next, len(r.parts) - 1
	}
	listed := r.listed()
	last := listed[len(listed)-1]
	return last.seg.Number, max(len(last.seg.Chunks)-1, 0)
}

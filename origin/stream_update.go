package origin

import (
	"fmt"
	"math"
	"time"

	"github.com/golivestream/live/packager"
)

// addSegment appends seg to rendition rid of st, slides the window, rebuilds
// the manifests and publishes the new snapshot, waking held requests.
// arrival is when the access unit that closed the segment reached ingest.
func (s *Server) addSegment(st *stream, rid string, seg *packager.Segment, disc bool, arrival time.Time) {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()

	prev := st.snap.Load()
	next := &snapshot{ended: prev.ended, renditions: make([]*rendition, len(prev.renditions))}
	copy(next.renditions, prev.renditions)
	var streamed *partial // the partial of seg, once it is listed
	for i, p := range prev.renditions {
		if p.id != rid {
			continue
		}
		r := *p
		streamed, r.partial = r.partial, newPartial(seg.Number+1)
		// Dated when it began, as its streamed responses were.
		modTime := now
		if streamed != nil && streamed.number == seg.Number {
			if began := streamed.beganAt(); !began.IsZero() {
				modTime = began
			}
		}
		r.entries = s.slide(&r, &entry{
			seg: seg,
			obj: &object{
				body:        seg.Data,
				contentType: contentType(r.info),
				etag:        segmentETag(st, rid, seg.Number),
				modTime:     modTime,
				immutable:   true,
			},
			disc:   disc,
			listed: true,
		})
		r.next = seg.Number + 1
		secs := float64(seg.Duration) / float64(seg.Timescale)
		r.targetDuration = max(r.targetDuration, int(math.Round(secs)), 1)
		next.renditions[i] = &r
	}
	s.rebuildLocked(st, next, now)
	st.publishLocked(next)
	switch {
	case streamed == nil:
	case streamed.number == seg.Number:
		streamed.finish(seg.Data)
	default:
		streamed.end(false)
	}

	s.metrics.segments.WithLabelValues(kindOf(rid)).Inc()
	s.metrics.segmentBytes.WithLabelValues(kindOf(rid)).Add(float64(len(seg.Data)))
	if !arrival.IsZero() {
		s.metrics.availability.Observe(time.Since(arrival).Seconds())
	}
}

// segmentETag is the ETag of segment n of rendition rid.
func segmentETag(st *stream, rid string, n uint64) string {
	return fmt.Sprintf(`"%s-%s-%d"`, st.epoch, rid, n)
}

// addChunk hands a chunk of the segment rendition rid of st is producing
// to the requests held for that segment. It takes no lock: the partial
// it adds to is in the published snapshot.
func (s *Server) addChunk(st *stream, rid string, c *packager.Chunk) {
	if r := st.snap.Load().rendition(rid); r != nil && r.partial != nil && r.partial.number == c.SegmentNumber {
		r.partial.add(c.Segment)
	}
}

// slide returns r's entries with e appended, the ones past the window
// unlisted and the ones past the retention dropped. Entries are shared with
// older snapshots, so a changed one is copied, never modified.
func (s *Server) slide(r *rendition, e *entry) []*entry {
	ts := e.seg.Timescale
	end := e.end()
	listFrom := end - packager.Ticks(s.cfg.Window, ts)
	keepFrom := listFrom - packager.Ticks(s.cfg.Window+s.cfg.SegmentDuration, ts)

	out := make([]*entry, 0, len(r.entries)+1)
	for _, old := range r.entries {
		if old.end() <= keepFrom {
			continue
		}
		if old.listed && old.seg.Start < listFrom {
			c := *old
			c.listed = false
			old = &c
			if c.disc {
				r.discSeq++
			}
		}
		out = append(out, old)
	}
	return append(out, e)
}

// rebuildLocked sets up the manifests of next, from its renditions: each
// is built when first asked for. It also marks the ladder renditions that
// have stalled (see stallAfter). The caller holds st.mu.
func (s *Server) rebuildLocked(st *stream, next *snapshot, now time.Time) {
	source := next.sourceEnd()
	for i, r := range next.renditions {
		if len(r.listed()) == 0 {
			continue
		}
		c := *r
		s.markStallLocked(st, next, &c, source)
		ended := next.ended
		c.playlist = newLazy(func() *object {
			return newObject(mediaPlaylist(st, &c, ended), typeM3U8, now, false)
		})
		next.renditions[i] = &c
	}
	if !next.ready() {
		return
	}
	next.multivariant = newLazy(func() *object {
		return newObject(multivariantPlaylist(st, next), typeM3U8, now, false)
	})
	prior := st.priorLocked()
	next.mpd = newLazy(func() *object {
		mpd, err := buildMPD(st, prior, next, s.cfg, now)
		if err != nil {
			// Only a bug can get here: the MPD is built from our own types.
			s.log.Error("build MPD", "stream", st.name, "error", err)
			return nil
		}
		return newObject(mpd, typeMPD, now, false)
	})
}

// kindOf returns "video" or "audio" for a rendition id.
func kindOf(rid string) string {
	if len(rid) > 0 && rid[0] == 'a' {
		return "audio"
	}
	return "video"
}

// contentType is the MIME type of a rendition's files.
func contentType(info packager.Info) string {
	if info.Video {
		return typeMP4
	}
	return typeM4A
}

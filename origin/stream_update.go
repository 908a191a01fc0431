package origin

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/golivestream/live/packager"
)

// addSegment appends seg to rendition rid, slides the window, rebuilds
// the manifests and publishes the new snapshot, waking held requests.
// arrival is when the access unit that closed the segment reached ingest.
func (st *stream) addSegment(rid string, seg *packager.Segment, disc bool, arrival time.Time) {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()

	cfg := st.env.cfg
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
		r.entries = slide(&r, &entry{
			seg: seg,
			obj: &object{
				body:        seg.Data,
				contentType: contentType(r.info),
				etag:        st.segmentETag(&r, seg.Number),
				modTime:     modTime,
				immutable:   true,
			},
			disc:   disc,
			listed: true,
		}, cfg.Window, cfg.SegmentDuration)
		r.next = seg.Number + 1
		r.parts = nil // of the next segment
		if r.partTarget == 0 && len(seg.Chunks) > 0 {
			r.partTarget = partTargetOf(seg)
		}
		secs := float64(seg.Duration) / float64(seg.Timescale)
		r.targetDuration = max(r.targetDuration, int(math.Round(secs)), 1)
		next.renditions[i] = &r
	}
	st.rebuildLocked(next, now)
	st.arch.addedLocked(next, rid, seg, disc, now)
	st.publishLocked(next)
	switch {
	case streamed == nil:
	case streamed.number == seg.Number:
		streamed.finish(seg.Data)
	default:
		streamed.end(false)
	}

	if dir := st.env.cfg.Directory; dir != nil {
		dir.Serving(st.name, st.epoch, seg.Number)
	}
	m := st.env.metrics
	m.segments.WithLabelValues(kindOf(rid)).Inc()
	m.segmentBytes.WithLabelValues(kindOf(rid)).Add(float64(len(seg.Data)))
	if !arrival.IsZero() {
		m.availability.Observe(time.Since(arrival).Seconds())
	}
}

// segmentETag is the ETag of segment n of rendition rid of instance epoch.
func segmentETag(epoch, rid string, n uint64) string {
	return fmt.Sprintf(`"%s-%s-%d"`, epoch, rid, n)
}

// segmentETag is the ETag of segment n of st's rendition r: for a
// rendition of the ladder, which this process's encoder made, with the
// process's tag (streamEnv.ladderTag); the others' bytes are the same
// on every origin of the stream's epoch.
func (st *stream) segmentETag(r *rendition, n uint64) string {
	if r.ladder {
		return fmt.Sprintf(`"%s-%s-%d-%s"`, st.epoch, r.id, n, st.env.ladderTag)
	}
	return segmentETag(st.epoch, r.id, n)
}

// newLadderTag returns a random tag for the ETags of this process's
// ladder segments.
func newLadderTag() string {
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// initETag is the ETag of the init segment of rendition rid of instance
// epoch.
func initETag(epoch, rid string) string {
	return fmt.Sprintf(`"%s-%s-init"`, epoch, rid)
}

// playlistLocked gives rendition i of next, a snapshot about to be
// published whose rendition i is its own copy, its media playlist and
// delta update, built by playlist_hls.go's pure functions when first asked
// for.
func (st *stream) playlistLocked(next *snapshot, i int, now time.Time) {
	c := next.renditions[i]
	if len(c.listed()) == 0 {
		return
	}
	c.playlist = newLazy(func() *object {
		return newObject(mediaPlaylist(&st.instance, c, next, false), typeM3U8, now, false)
	})
	c.delta = newLazy(func() *object {
		return newObject(mediaPlaylist(&st.instance, c, next, true), typeM3U8, now, false)
	})
}

// slide returns r's entries with e appended, the ones past the window
// unlisted and the ones past the retention (another window and one
// segment) dropped, and counts in r.discSeq the discontinuities that left
// the window. Entries are shared with older snapshots, so a changed one
// is copied, never modified.
func slide(r *rendition, e *entry, window, segment time.Duration) []*entry {
	ts := e.seg.Timescale
	end := e.end()
	listFrom := end - mediatime.Ticks(window, ts)
	keepFrom := listFrom - mediatime.Ticks(window+segment, ts)

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

// rebuildLocked sets up the manifests of next, a snapshot about to be
// published, from its renditions: each is built, by the pure functions of
// playlist_hls.go and manifest_dash.go, when first asked for. It also
// marks the ladder renditions that have stalled (see stallAfter).
func (st *stream) rebuildLocked(next *snapshot, now time.Time) {
	source := next.sourceEnd()
	for i, r := range next.renditions {
		if len(r.listed()) == 0 {
			continue
		}
		c := *r
		st.markStallLocked(next, &c, source)
		next.renditions[i] = &c
		st.playlistLocked(next, i, now)
	}
	if !next.ready() {
		return
	}
	next.multivariant = newLazy(func() *object {
		return newObject(multivariantPlaylist(&st.instance, next), typeM3U8, now, false)
	})
	prior := st.priorLocked()
	env := st.env
	next.mpd = newLazy(func() *object {
		// The earlier Periods as their instances are when it is asked for.
		mpd, err := buildMPD(view{&st.instance, next}, views(prior), env.cfg, now)
		if err != nil {
			// Only a bug can get here: the MPD is built from our own types.
			env.log.Error("build MPD", "stream", st.name, "error", err)
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

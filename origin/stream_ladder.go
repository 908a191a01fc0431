package origin

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/packager"
)

// addRung makes the packager of ladder rendition rid, coded as c and
// starting at start on the stream timeline, for sess, which must still
// be st's publisher (Session.AddRendition). A rendition st already has
// goes on with its next segment number after a discontinuity, and must
// have the same init segment; a new one numbers its segments by their
// place on the timeline, and joins the snapshot at once.
func (st *stream) addRung(sess *Session, rid string, c codecs.Codec, start time.Duration) (*sessionTrack, error) {
	cfg := st.env.cfg
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.session != sess {
		return nil, fmt.Errorf("add rendition %s: %w", rid, errSessionClosed)
	}
	prev := st.snap.Load()
	old := prev.rendition(rid)
	if old != nil && !old.ladder {
		return nil, fmt.Errorf("add rendition %s: the publisher sends it", rid)
	}
	first := uint64(max(0, math.Round(float64(start)/float64(cfg.SegmentDuration))))
	if old != nil {
		first = old.next
	}
	t := &sessionTrack{rid: rid, disc: old != nil && len(old.entries) > 0}
	pk, err := packager.New(packager.Config{
		Codec:           c,
		SegmentDuration: cfg.SegmentDuration,
		ChunkDuration:   cfg.ChunkDuration,
		FirstNumber:     first,
		OnSegment: func(seg *packager.Segment) {
			disc := t.disc
			t.disc = false
			st.addSegment(rid, seg, disc, time.Time{})
		},
		OnChunk: func(c *packager.Chunk) { st.addChunk(rid, c) },
	})
	if err != nil {
		return nil, fmt.Errorf("add rendition %s: %w", rid, err)
	}
	t.pk = pk
	if old != nil && old.init != nil && !bytes.Equal(old.init.body, pk.Init()) {
		return nil, fmt.Errorf("add rendition %s: %w", rid, ErrRenditionChanged)
	}

	if old == nil {
		now := time.Now()
		info := pk.Info()
		next := &snapshot{ended: prev.ended}
		next.renditions = append(next.renditions, prev.renditions...)
		next.renditions = append(next.renditions, &rendition{
			id:      rid,
			info:    info,
			ladder:  true,
			next:    first,
			first:   first,
			partial: newPartial(first),
			init: &object{
				body:        pk.Init(),
				contentType: contentType(info),
				etag:        initETag(st.epoch, rid),
				modTime:     now,
				immutable:   true,
			},
		})
		st.rebuildLocked(next, now)
		st.publishLocked(next)
	}
	sess.log.Info("rendition added", "rendition", rid, "first_segment", first, "resumed", old != nil)
	return t, nil
}

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
			if t.cipher != nil {
				var err error
				if seg, err = t.cipher.segment(seg); err != nil {
					sess.log.Error("segment not encrypted: dropped", "rendition", rid, "error", err)
					return
				}
			}
			disc := t.disc
			t.disc = false
			st.addSegment(rid, seg, disc, time.Time{})
		},
		OnChunk: func(c *packager.Chunk) {
			if t.cipher != nil {
				if c = t.cipher.chunk(c, t.pk.Info().Timescale); c == nil {
					return
				}
			}
			st.addChunk(rid, c)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("add rendition %s: %w", rid, err)
	}
	t.pk = pk
	if t.cipher, err = newTrackCipher(st.keys, rid, pk.Init()); err != nil {
		return nil, fmt.Errorf("add rendition %s: %w", rid, err)
	}
	if old != nil && old.init != nil && !bytes.Equal(old.init.body, t.init()) {
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
				body:        t.init(),
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

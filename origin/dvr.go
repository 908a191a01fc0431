package origin

// The DVR window (issue #24): a rewind window of Config.DVR per stream,
// far longer than the memory window, described by manifests of its own
// beside the live ones, /live/{stream}/dvr.m3u8 (its media playlists
// {epoch}/{rendition}/dvr.m3u8) and /live/{stream}/dvr.mpd. Their
// segments are the live ones at their live URLs: from memory while the
// origin holds them, then from the archive (archive_serve.go).
//
// Why manifests of their own rather than a longer live window: live
// players reload their playlist every segment, and LL-HLS players every
// part; an hour of 1-s segments is 7200 lines, some 400 KB, which every
// live viewer would fetch every second to watch the last few. The DVR
// playlists are for the few who rewind. They slide (RFC 8216bis 6.2.2),
// without EXT-X-PLAYLIST-TYPE: EVENT would promise that no segment ever
// leaves, which a window does not keep.
//
// The window keeps, in memory, each segment's number, media time and
// size: 40 bytes a segment, about 1.2 MB for two hours of a source, a
// ladder of three and audio.

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/packager"
)

// dvrView is a stream instance's DVR window at one moment. It is never
// modified once published (streamArchive.view); the next one shares its
// renditions' segment arrays, appending past their lengths.
type dvrView struct {
	in  *instance
	log *slog.Logger
	// depth is the window (Config.DVR), segment the target segment
	// duration.
	depth, segment time.Duration
	renditions     []*dvrRendition
	ended          bool
	// multivariant and mpd are built when first asked for.
	multivariant, mpd *lazyObject
}

// dvrRendition is one rendition of a DVR window, with its media
// playlist, built when first asked for.
type dvrRendition struct {
	presRendition
	playlist *lazyObject
}

// added returns the view after segment seg of rendition r (disc: after
// a discontinuity, fps: r's frame rate when this is its first segment),
// the segments that end more than the window before seg's end left out.
func (v *dvrView) added(r *rendition, seg *packager.Segment, disc bool, fps float64, ended bool) *dvrView {
	next := &dvrView{in: v.in, log: v.log, depth: v.depth, segment: v.segment, ended: ended, renditions: make([]*dvrRendition, 0, len(v.renditions)+1)}
	var cur *dvrRendition
	for _, dr := range v.renditions {
		if dr.id == r.id {
			c := *dr
			cur = &c
			next.renditions = append(next.renditions, cur)
			continue
		}
		next.renditions = append(next.renditions, dr)
	}
	if cur == nil {
		cur = &dvrRendition{presRendition: presRendition{
			id: r.id, codec: r.info.Codec, video: r.info.Video, width: r.info.Width, height: r.info.Height,
			fps: fps, sample: r.info.SampleRate, channels: r.info.Channels, timescale: r.info.Timescale,
		}}
		next.renditions = append(next.renditions, cur)
	}
	s := presSegment{number: seg.Number, start: seg.Start, duration: seg.Duration, size: int64(len(seg.Data)), disc: disc}
	// Appending writes past the length of every older view's slice:
	// their readers never see it.
	segs := append(cur.segs, s)
	from := s.end() - mediatime.Ticks(v.depth, cur.timescale)
	i := 0
	for i < len(segs)-1 && segs[i].end() <= from {
		if segs[i+1].disc {
			cur.discSeq++
		}
		i++
	}
	cur.segs = segs[i:]
	next.build(cur)
	return next
}

// end returns the view of the window once its stream ended.
func (v *dvrView) end() *dvrView {
	next := &dvrView{in: v.in, log: v.log, depth: v.depth, segment: v.segment, ended: true, renditions: make([]*dvrRendition, len(v.renditions))}
	for i, dr := range v.renditions {
		c := *dr
		next.renditions[i] = &c
	}
	next.build(nil)
	return next
}

// build sets up the view's manifests, built when first asked for: the
// media playlist of changed (or of every rendition when nil), the
// multivariant playlist and the MPD.
func (v *dvrView) build(changed *dvrRendition) {
	now := time.Now()
	for _, dr := range v.renditions {
		if changed == nil || dr == changed {
			dr.playlist = newLazy(func() *object {
				return newObject(presMediaPlaylist(v.presentation(now), &dr.presRendition), typeM3U8, now, false)
			})
		}
	}
	v.multivariant = newLazy(func() *object {
		return newObject(presMultivariant(v.presentation(now)), typeM3U8, now, false)
	})
	v.mpd = newLazy(func() *object {
		b, err := presMPD(v.presentation(now))
		if err != nil {
			// Only a bug can get here: the MPD is built from our own types.
			v.log.Error("build DVR MPD", "error", err)
			return nil
		}
		return newObject(b, typeMPD, now, false)
	})
}

// presentation describes the view, for the manifests at /live/{stream}/,
// as of now.
func (v *dvrView) presentation(now time.Time) *presentation {
	epoch := v.in.epoch
	p := &presentation{
		epoch:   epoch,
		ast:     v.in.ast,
		live:    !v.ended,
		depth:   v.depth,
		segment: v.segment,
		now:     now,
		uris: presURIs{
			playlist: func(rid string) string { return epoch + "/" + rid + "/dvr.m3u8" },
			files:    func(string) string { return "" },
			mpdFiles: epoch + "/",
			keys:     keyURIPrefix,
		},
	}
	if v.in.keys != nil {
		p.keys = v.in.keys.presKeys()
	}
	for _, dr := range v.renditions {
		p.renditions = append(p.renditions, &dr.presRendition)
	}
	return p
}

// dvrObject returns what pick finds in st's DVR window, holding the
// request as serveManifest does while the stream has no segment yet.
func (s *Server) dvrObject(r *http.Request, st *stream, pick func(*dvrView) *object) *object {
	if st.arch == nil || st.arch.dvr <= 0 {
		return nil
	}
	return st.await(r.Context(), func(sn *snapshot) (*object, bool) {
		o := pick(st.arch.view.Load())
		return o, o != nil || sn.ended
	})
}

// serveDVR answers the DVR manifests of a stream: dvr.m3u8 and dvr.mpd.
func (s *Server) serveDVR(w http.ResponseWriter, r *http.Request) {
	st := s.stream(r.PathValue("stream"))
	if st == nil {
		s.notFound(w, "dvr", "no such stream")
		return
	}
	lazy := func(v *dvrView) *lazyObject { return v.multivariant }
	if strings.HasSuffix(r.URL.Path, ".mpd") {
		lazy = func(v *dvrView) *lazyObject { return v.mpd }
	}
	obj := s.dvrObject(r, st, func(v *dvrView) *object { return lazy(v).get() })
	if obj == nil {
		s.notFound(w, "dvr", "no DVR window")
		return
	}
	s.serveObject(w, r, "dvr", obj)
}

// serveDVRPlaylist answers a rendition's DVR media playlist,
// /live/{stream}/{epoch}/{rendition}/dvr.m3u8.
func (s *Server) serveDVRPlaylist(w http.ResponseWriter, r *http.Request) {
	st := s.instance(r.PathValue("stream"), r.PathValue("epoch"))
	if st == nil {
		s.notFound(w, "dvr", "no such stream")
		return
	}
	rid := r.PathValue("rendition")
	obj := s.dvrObject(r, st, func(v *dvrView) *object {
		for _, dr := range v.renditions {
			if dr.id == rid {
				return dr.playlist.get()
			}
		}
		return nil
	})
	if obj == nil {
		s.notFound(w, "dvr", "no such rendition in the DVR window")
		return
	}
	s.serveObject(w, r, "dvr", obj)
}

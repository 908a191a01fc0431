package origin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// servePlaylist answers a media playlist, the rendition's current one or,
// with delivery directives (RFC 8216bis 6.2.5), once it holds the segment
// or part asked for, and as a delta update.
func (s *Server) servePlaylist(w http.ResponseWriter, r *http.Request, st *stream, rid string) {
	d, err := layout.ParseDirectives(r.URL.RawQuery)
	if err != nil {
		s.badRequest(w, "playlist", err.Error())
		return
	}
	reason := "rendition has no segments yet"
	tooFar, bridged := false, false
	obj := st.await(r.Context(), func(sn *snapshot) (*object, bool) {
		if st.succ.Load() != nil {
			// A later instance took over while the request was held (or
			// on its way here): the playlist goes on into it. The
			// instance's own playlist would say EXT-X-ENDLIST once it is
			// superseded, and a player that reads it stops there.
			bridged = true
			return nil, true
		}
		rd := sn.rendition(rid)
		if rd.stalled > 0 {
			// hls.js does not retry a level playlist that answers
			// 404: it switches to another level at once.
			reason = fmt.Sprintf("rendition stalled: its transcoder has produced nothing for %d s", int(rd.stalled.Seconds()))
			return nil, true
		}
		pl := rd.playlist
		if d.Skip != "" && rd.partTarget > 0 && !sn.ended {
			pl = rd.delta
		}
		o := pl.get()
		if o == nil || sn.ended || !d.HasMSN {
			return o, o != nil || sn.ended
		}
		// RFC 8216bis 6.2.5.2: a request for a segment more than two past
		// the playlist's last one is an error; one for a segment or part
		// the playlist holds is answered at once; else the server holds
		// it until the playlist holds it.
		msn, part := lastPart(rd)
		if d.MSN > msn+2 {
			tooFar = true
			return nil, true
		}
		if d.MSN < rd.next || d.MSN == msn && d.HasPart && uint64(d.Part) <= uint64(part) && len(rd.parts) > 0 {
			return o, true
		}
		return nil, false
	})
	switch {
	case bridged:
		s.serveBridged(w, r, st, rid)
	case tooFar:
		s.badRequest(w, "playlist", "_HLS_msn is more than two segments past the playlist's last")
	case obj == nil && d.HasMSN && reason == "rendition has no segments yet":
		// Not produced within the wait (three target durations).
		w.Header().Set("Cache-Control", "no-store")
		s.metrics.requests.WithLabelValues("playlist", "503").Inc()
		http.Error(w, "the segment or part asked for was not produced in time", http.StatusServiceUnavailable)
	case obj == nil:
		s.notFound(w, "playlist", reason)
	default:
		s.serveObject(w, r, "playlist", obj)
	}
}

// serveBridged answers the media playlist of rendition rid of st, an
// instance that a later one continues (playlist_bridge.go), which has no
// LL-HLS tags: a blocking reload is held until it lists the segment
// asked for (awaitBridged), and its other directives are ignored.
func (s *Server) serveBridged(w http.ResponseWriter, r *http.Request, st *stream, rid string) {
	if d, err := layout.ParseDirectives(r.URL.RawQuery); err == nil && d.HasMSN {
		st.awaitBridged(r.Context(), rid, d.MSN)
	}
	obj := st.bridged(rid)
	if obj == nil {
		s.notFound(w, "playlist", "stream ended")
		return
	}
	s.serveObject(w, r, "playlist", obj)
}

// awaitBridged holds a blocking reload of the bridged playlist of
// rendition rid of st (RFC 8216bis 6.2.5.2) until it lists segment msn,
// in its numbering, or the chain ends that rendition, or three segment
// durations pass (then the playlist is answered as it is, and the
// player asks again): the later instance that took over may not have
// finished a segment yet. The bridged playlist has no parts: a part of
// msn waits for the whole segment.
func (st *stream) awaitBridged(ctx context.Context, rid string, msn uint64) {
	newestOf(st).await(ctx, func(*snapshot) (*object, bool) {
		chain, ended := st.bridgeChain(rid)
		if ended || len(chain) == 0 {
			return nil, true
		}
		links := bridgeLinks(chain)
		last := links[len(links)-1]
		return nil, int64(msn) < int64(last.limit)+last.off
	})
}

// servePart answers part p of segment n, holding the request while the
// part is the next to be produced or one after it (the preload hint).
func (s *Server) servePart(w http.ResponseWriter, r *http.Request, st *stream, rid string, n uint64, p int) {
	obj := st.await(r.Context(), func(sn *snapshot) (*object, bool) {
		rd := sn.rendition(rid)
		b, gone := rd.findPart(n, p)
		switch {
		case b != nil:
			// Dated as its segment is: when it began.
			mod := time.Now()
			if e := rd.find(n); e != nil {
				mod = e.obj.modTime
			} else if began := rd.partial.beganAt(); !began.IsZero() {
				mod = began
			}
			return &object{
				body:        b,
				contentType: contentType(rd.info),
				etag:        fmt.Sprintf(`"%s-%s-%d.%d"`, st.epoch, rid, n, p),
				modTime:     mod,
				immutable:   true,
			}, true
		case gone, sn.ended, n > rd.next+1:
			return nil, true
		}
		return nil, false
	})
	if obj == nil {
		s.notFound(w, "part", "no such part")
		return
	}
	s.serveObject(w, r, "part", obj)
}

// badRequest answers 400 with a reason, not cached.
func (s *Server) badRequest(w http.ResponseWriter, class, reason string) {
	s.metrics.requests.WithLabelValues(class, "400").Inc()
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, http.StatusBadRequest)
}

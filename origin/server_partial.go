package origin

import (
	"net/http"
	"time"
)

// streamable reports whether r may get a segment streamed while it is
// produced: a plain GET. HEAD needs the length, and ranges and
// conditions are answered on the complete segment.
func streamable(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, h := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := r.Header[h]; ok {
			return false
		}
	}
	return true
}

// streamPartial answers a request held for the segment p is producing:
// once its first chunk is there, the headers the complete segment has
// (but its length: the body is chunked) and each chunk as it is
// packaged. If the segment is abandoned after bytes were sent, the
// connection is aborted, so that no cache takes a short body for the
// segment. A segment that never began gets what serveSegment would say
// of it then. Every wait is bounded by three segment durations without
// progress.
func (s *Server) streamPartial(w http.ResponseWriter, r *http.Request, st *stream, rid string, p *partial) {
	patience := 3 * s.cfg.SegmentDuration
	timer := time.NewTimer(patience)
	defer timer.Stop()
	flusher, _ := w.(http.Flusher)
	off := 0
	for {
		b, done, err, more := p.Next(off)
		if len(b) > 0 {
			if off == 0 {
				s.streamHeaders(w, st, rid, p)
			}
			n, err := w.Write(b)
			off += n
			s.metrics.bytesServed.WithLabelValues("segment").Add(float64(n))
			if err != nil {
				return // the client left
			}
			// The last bytes are not flushed: they leave with the end of
			// the chunked body when the handler returns, in one write, so
			// that a PoP reading the segment sees its end together with
			// them and sends both to its waiters in one write too.
			if flusher != nil && more != nil {
				flusher.Flush()
			}
			timer.Reset(patience)
			continue
		}
		if done {
			if err != nil || off == 0 {
				s.partialFailed(w, r, st, rid, p, off)
			}
			return // else every chunk was sent: the segment
		}
		select {
		case <-more:
		case <-timer.C:
			s.partialFailed(w, r, st, rid, p, off)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// streamHeaders writes the headers of the segment p is producing, of
// rendition rid: those serveObject gives the complete segment, but its
// length.
func (s *Server) streamHeaders(w http.ResponseWriter, st *stream, rid string, p *partial) {
	h := w.Header()
	r := st.snap.Load().rendition(rid)
	h.Set("Content-Type", contentType(r.info))
	h.Set("ETag", st.segmentETag(r, p.number))
	h.Set("Last-Modified", p.beganAt().UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	s.metrics.requests.WithLabelValues("segment", "200").Inc()
	s.metrics.streamed.Inc()
	w.WriteHeader(http.StatusOK)
}

// partialFailed ends a request whose partial was abandoned, stalled, or
// over before anything was sent, after off bytes of it were sent: an
// aborted connection if any were, else the segment if it is complete
// after all, else a 404.
func (s *Server) partialFailed(w http.ResponseWriter, r *http.Request, st *stream, rid string, p *partial, off int) {
	if off > 0 {
		s.log.Warn("segment streamed while produced was abandoned; aborting its response",
			"stream", st.name, "rendition", rid, "segment", p.number, "sent", off)
		panic(http.ErrAbortHandler)
	}
	if rd := st.snap.Load().rendition(rid); rd != nil {
		if e := rd.find(p.number); e != nil {
			s.serveObject(w, r, "segment", e.obj)
			return
		}
	}
	s.notFound(w, "segment", "segment not produced")
}

package origin

import (
	"bytes"
	"net/http"
	"time"

	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/layout"
)

// Paths served, relative to the stream directory /live/{stream}/:
//
//	index.m3u8                    HLS multivariant playlist
//	manifest.mpd                  DASH MPD
//	{epoch}/{rendition}/index.m3u8  HLS media playlist
//	{epoch}/{rendition}/init.mp4    CMAF init segment
//	{epoch}/{rendition}/{n}.m4s     CMAF media segment n
//
// The epoch names one instance of a stream, so that an immutable file is
// never replaced at its URL even when a stream name is reused.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live/{stream}/{file}", s.serveManifest)
	mux.HandleFunc("GET /live/{stream}/{epoch}/{rendition}/{file}", s.serveRendition)
	s.keyRoutes(mux) // keys of encrypted streams: protect_keys.go
	mux.HandleFunc("OPTIONS /", serveOptions)
	// Any other GET or HEAD is a path we do not have: 404, not the 405
	// that the OPTIONS pattern above would make the mux answer.
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		s.notFound(w, "other", "no such path")
	})
	mux.HandleFunc("GET "+TimePath, serveTime)
	mux.HandleFunc("GET /api/streams", s.serveStreams)
	s.archiveRoutes(mux) // DVR, VOD, clips: archive_serve.go
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
	return mux
}

// ServeHTTP serves the origin's HTTP API. A path under /live/ that is not
// an object of the layout in its one spelling (internal/layout: no
// leading zeros, no %-escapes) is not found, so that no cache in front
// can hold one object under two names; a range request of more than
// httpserve.MaxRanges ranges gets the whole object.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	path := r.URL.EscapedPath()
	if len(path)+len(r.URL.RawQuery) > layout.MaxURI {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "URI too long", http.StatusRequestURITooLong)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && layout.Under(r.URL.Path) {
		o, ok := layout.Parse(path)
		if !ok {
			s.notFound(w, "other", "no such object")
			return
		}
		s.setAccess(w.Header(), o.Stream)
	}
	httpserve.LimitRanges(r.Header)
	s.mux.ServeHTTP(w, r)
}

// setCORS lets players on other origins read our responses, and the
// headers they use for clock and cache decisions (Date for latency).
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Date, ETag, Last-Modified, Age, Content-Length, Content-Range")
}

func serveOptions(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// serveTime answers the clock named by UTCTiming (urn:mpeg:dash:utc:http-iso:2014).
func serveTime(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(time.Now().UTC().Format("2006-01-02T15:04:05.000Z")))
}

// notFound answers 404 with a reason; not cached by shared caches, so a
// segment that appears a moment later is not hidden by a stale 404.
func (s *Server) notFound(w http.ResponseWriter, class, reason string) {
	s.metrics.requests.WithLabelValues(class, "404").Inc()
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, http.StatusNotFound)
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request) {
	name, file := r.PathValue("stream"), r.PathValue("file")
	var pick func(*snapshot) *object
	switch file {
	case "index.m3u8":
		pick = func(sn *snapshot) *object { return sn.multivariant.get() }
	case "manifest.mpd":
		pick = func(sn *snapshot) *object { return sn.mpd.get() }
	default:
		s.notFound(w, "manifest", "no such file")
		return
	}
	st := s.stream(name)
	if st == nil {
		s.notFound(w, "manifest", "no such stream")
		return
	}
	// A stream that just started has no segment yet: hold the request
	// until it has one rather than answer 404.
	obj := st.await(r.Context(), func(sn *snapshot) (*object, bool) {
		o := pick(sn)
		return o, o != nil || sn.ended
	})
	if obj == nil {
		s.notFound(w, "manifest", "stream has no segments yet")
		return
	}
	s.serveObject(w, r, "manifest", obj)
}

func (s *Server) serveRendition(w http.ResponseWriter, r *http.Request) {
	st := s.instance(r.PathValue("stream"), r.PathValue("epoch"))
	if st == nil {
		s.serveArchived(w, r, "no such stream") // an epoch no longer (or never) in memory
		return
	}
	rid, file := r.PathValue("rendition"), r.PathValue("file")
	if st.snap.Load().rendition(rid) == nil {
		s.notFound(w, "segment", "no such rendition")
		return
	}
	switch {
	case file == "index.m3u8" && st.succ.Load() != nil:
		// A later instance continues this one: its playlists go on.
		s.serveBridged(w, r, st, rid)
	case st.gone.Load():
		s.serveArchived(w, r, "stream ended")
	case file == "init.mp4":
		s.serveObject(w, r, "init", st.snap.Load().rendition(rid).init)
	case file == "index.m3u8":
		s.servePlaylist(w, r, st, rid)
	default:
		o, _ := layout.Parse(r.URL.EscapedPath()) // valid: ServeHTTP checked
		switch o.Kind {
		case layout.Segment:
			s.serveSegment(w, r, st, rid, o.Number)
		case layout.Part:
			s.servePart(w, r, st, rid, o.Number, o.Part)
		default:
			s.notFound(w, "segment", "no such file")
		}
	}
}

// serveSegment answers segment n, holding the request when n is the one
// being produced or the one after it: a plain GET gets its chunks as they
// are packaged (streamPartial), anything else the segment once complete.
func (s *Server) serveSegment(w http.ResponseWriter, r *http.Request, st *stream, rid string, n uint64) {
	var reason string
	var part *partial
	streamable := streamable(r)
	obj := st.await(r.Context(), func(sn *snapshot) (*object, bool) {
		rd := sn.rendition(rid)
		if rd == nil {
			reason = "no such rendition"
			return nil, true
		}
		if e := rd.find(n); e != nil {
			return e.obj, true
		}
		if streamable && rd.partial != nil && rd.partial.number == n && !sn.ended {
			part = rd.partial
			return nil, true
		}
		switch {
		case len(rd.entries) > 0 && n < rd.entries[0].seg.Number, n < rd.next:
			reason = "segment expired"
		case sn.ended:
			reason = "stream ended"
		case n > rd.next+1:
			reason = "segment too far ahead"
		default:
			return nil, false // the next one or the one after: wait
		}
		return nil, true
	})
	if part != nil {
		s.streamPartial(w, r, st, rid, part)
		return
	}
	if obj == nil && reason == "segment expired" {
		s.serveArchived(w, r, reason) // left the memory window
		return
	}
	if obj == nil {
		if reason == "" {
			reason = "segment not ready in time"
		}
		s.notFound(w, "segment", reason)
		return
	}
	s.serveObject(w, r, "segment", obj)
}

// serveObject writes obj with its caching headers; ServeContent handles
// HEAD, Range and conditional requests (If-None-Match, If-Modified-Since).
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, class string, obj *object) {
	h := w.Header()
	h.Set("Content-Type", obj.contentType)
	h.Set("ETag", obj.etag)
	if obj.immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", s.manifestCacheControl)
	}
	s.metrics.requests.WithLabelValues(class, "200").Inc()
	s.metrics.bytesServed.WithLabelValues(class).Add(float64(len(obj.body)))
	http.ServeContent(w, r, "", obj.modTime, bytes.NewReader(obj.body))
}

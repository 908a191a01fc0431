package origin

// Serving from the archive: an epoch's init segments and segments at
// their live URLs once they left the memory window (or the origin never
// had them: another origin's epoch, or one from before a restart), and
// the routes of the DVR window, the VODs and the clips.

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
)

// archiveRoutes adds the routes of the DVR window (dvr.go), the VODs and
// clips (vod.go) and their APIs (vod_api.go) to mux.
func (s *Server) archiveRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /live/{stream}/dvr.m3u8", s.serveDVR)
	mux.HandleFunc("GET /live/{stream}/dvr.mpd", s.serveDVR)
	mux.HandleFunc("GET /live/{stream}/{epoch}/{rendition}/dvr.m3u8", s.serveDVRPlaylist)
	mux.HandleFunc("GET "+layout.VODPrefix, s.serveVOD)
	mux.HandleFunc("GET /api/vods", s.serveVODList)
	mux.HandleFunc("GET /api/clips", s.serveClipList)
	mux.HandleFunc("POST /api/clips", s.authorized(s.serveClipCreate))
	mux.HandleFunc("DELETE /api/clips/{id}", s.authorized(s.serveClipDelete))
}

// authorized lets a request through to h only with Config.APIToken as
// its bearer token, when one is set; else it answers 401.
func (s *Server) authorized(h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.APIToken == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.hasAPIToken(r) {
			s.log.Warn("api request refused: missing or wrong bearer token", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token (the origin's $LIVE_API_TOKEN)")
			return
		}
		h(w, r)
	}
}

// hasAPIToken reports whether r carries Config.APIToken as its bearer
// token; false when none is set.
func (s *Server) hasAPIToken(r *http.Request) bool {
	if s.cfg.APIToken == "" {
		return false
	}
	want := "Bearer " + s.cfg.APIToken
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// listable reports whether the lists of VODs and clips that r asked for
// may name stream: a private stream's name is no viewer's business, so
// only a request with the API token sees it there. A viewer who names
// it (?stream=) is told about it, and still needs a playback token to
// watch.
func (s *Server) listable(r *http.Request, stream string) bool {
	return s.cfg.Access == nil || !s.cfg.Access(stream).Private || s.hasAPIToken(r)
}

// serveArchived answers a request for a file of an epoch (its path
// checked by ServeHTTP) that memory does not hold: an init segment or a
// segment, from the archive, at the same URL, with the same bytes and
// ETag as it had live, immutable; 404 for anything else, or what the
// archive does not hold (yet: a segment is written a moment after it is
// listed, and leaves memory a window later). Without an archive, the
// answer is a 404 for reason, why memory does not hold it.
func (s *Server) serveArchived(w http.ResponseWriter, r *http.Request, reason string) {
	o, _ := layout.Parse(r.URL.EscapedPath())
	if s.vod == nil || (o.Kind != layout.Segment && o.Kind != layout.Init) {
		s.notFound(w, "segment", reason)
		return
	}
	e := archive.Entry{Rendition: o.Rendition, Kind: archive.KindSegment, Number: o.Number}
	class, etag := "archived_segment", segmentETag(o.Epoch, o.Rendition, o.Number)
	if o.Kind == layout.Init {
		e = archive.Entry{Rendition: o.Rendition, Kind: archive.KindInit}
		class, etag = "archived_init", initETag(o.Epoch, o.Rendition)
	}
	began := time.Now()
	e, err := s.vod.reader.Locate(r.Context(), o.Stream, o.Epoch, e)
	var body []byte
	if err == nil {
		body, err = s.vod.reader.Object(r.Context(), o.Stream, o.Epoch, e, 0, -1)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.vod.reads.WithLabelValues("miss").Inc()
		s.notFound(w, class, "not in memory, and not archived")
		return
	case err != nil:
		if r.Context().Err() != nil {
			return // the client left
		}
		s.vod.reads.WithLabelValues("error").Inc()
		s.log.Warn("archive read failed", "path", r.URL.Path, "error", err)
		s.metrics.requests.WithLabelValues(class, "503").Inc()
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "archive unavailable", http.StatusServiceUnavailable)
		return
	}
	s.vod.reads.WithLabelValues("hit").Inc()
	s.vod.readSeconds.Observe(time.Since(began).Seconds())
	typ := typeMP4
	if kindOf(o.Rendition) == "audio" {
		typ = typeM4A
	}
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("ETag", etag)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	s.metrics.requests.WithLabelValues(class, "200").Inc()
	s.metrics.bytesServed.WithLabelValues(class).Add(float64(len(body)))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

package origin

import (
	"net/http"
	"strconv"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/protection"
)

// Key delivery (issue #25). The keys of an encrypted stream are served
// under its path, /live/{stream}/license (W3C EME ClearKey license
// requests, which every player's page is given) and
// /live/{stream}/keys/{kid} (the URI of the stream's EXT-X-KEY tags:
// POST, a license request; GET, the raw key of an HLS "identity" key
// URI), with Cache-Control: private, no-store.
//
// The keys of an archived epoch (its VOD, clips and DVR window) are
// delivered there too, by an origin that did not issue them as well
// (vod_protect.go: deliveryKeys).
//
// The origin serves PoPs, not viewers: like every object of a private
// stream (access.go), a key is given to whoever reaches the origin, and
// the PoPs check the viewer's token before they pass a key request on,
// uncached (pop: keys.go). So a key goes only where the stream's media
// goes, and no cache ever holds one. The responses carry the stream's
// access rules like its other objects, so that a PoP that has seen
// nothing else of the stream learns them from its first key request.

// keyRoutes adds the key delivery paths of encrypted streams to mux; none
// when no stream is encrypted.
func (s *Server) keyRoutes(mux *http.ServeMux) {
	if s.env.prot == nil {
		return
	}
	keys := deliveryKeys{keys: s.env.prot.cfg.Keys, timeout: s.env.prot.cfg.KeyTimeout}
	if s.vod != nil {
		keys.archived = s.vod.kids // the keys of archived epochs: vod_protect.go
	}
	ks, err := protection.NewKeyServer(protection.KeyServerConfig{
		Keys: keys,
		// The PoPs checked the viewer (see above).
		Authorize:  func(*http.Request, string) error { return nil },
		CORSOrigin: "*",
		Logger:     s.log,
	})
	if err != nil {
		// Only a bug can get here: Keys is checked by New.
		s.log.Error("no key server", "error", err)
		return
	}
	license := s.keyHandler("license", ks.ServeLicense)
	key := s.keyHandler("key", ks.ServeKey)
	keyPath := layout.Prefix + "{stream}/" + layout.KeysDir + "/{kid}"
	licensePath := layout.Prefix + "{stream}/" + layout.LicenseFile
	mux.Handle("POST "+licensePath, license)
	mux.Handle("OPTIONS "+licensePath, license)
	mux.Handle("POST "+keyPath, license)
	mux.Handle("GET "+keyPath, key)
	mux.Handle("OPTIONS "+keyPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A preflight for either method: the license one allows POST,
		// which is what a player's request needs; GET needs none.
		license.ServeHTTP(w, r)
	}))
}

// keyHandler wraps a key server handler with the stream's access rules
// on its answer and the request's count in live_origin_key_requests_total.
func (s *Server) keyHandler(kind string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.PathValue("stream")
		if !layout.ValidStream(stream) {
			s.notFound(w, "key", "no such stream")
			return
		}
		s.setAccess(w.Header(), stream)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		s.metrics.keyRequests.WithLabelValues(kind, strconv.Itoa(sw.code)).Inc()
	})
}

// statusWriter remembers the status of its answer.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

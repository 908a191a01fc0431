package gslb

import (
	"errors"
	"net/http"

	"github.com/golivestream/live/internal/layout"
)

// IngestRoute is where a publisher of a stream should push: the RTMP
// URLs of the stream's primary and backup origins (dual hot ingest: an
// encoder pushes to both), as GET /api/ingest/{stream} answers it.
type IngestRoute struct {
	Stream  string `json:"stream"`
	Primary string `json:"primary"`
	// Backup is "" when the fleet has one origin that takes streams.
	Backup string `json:"backup,omitempty"`
	// Live says the stream is live already, on these origins.
	Live bool `json:"live"`
}

// ErrNoPlacement is the error of an Ingest hook that cannot place a
// stream now: no origin, or a directory it cannot read. The answer is 503.
var ErrNoPlacement = errors.New("no origin can take the stream now")

// serveIngest answers where a publisher of a stream should push.
func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	stream := r.PathValue("stream")
	if !layout.ValidStream(stream) {
		writeJSON(w, http.StatusBadRequest, errorBody{"invalid stream name: must match [A-Za-z0-9_-]{1,64}"})
		return
	}
	if s.cfg.Ingest == nil {
		writeJSON(w, http.StatusNotFound, errorBody{"this balancer places no publishers: it has no fleet directory (-etcd)"})
		return
	}
	rt, err := s.cfg.Ingest(stream)
	if err != nil {
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{err.Error()})
		return
	}
	rt.Stream = stream
	writeJSON(w, http.StatusOK, rt)
}

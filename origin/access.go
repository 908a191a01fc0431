package origin

import (
	"net/http"

	"github.com/golivestream/live/internal/layout"
)

// Access is who may watch a stream, as the origin tells the PoPs that
// check it (pop: access.go): the origin itself serves the PoPs, not the
// viewers, and checks nothing.
type Access struct {
	// Private streams need a signed playback token.
	Private bool
	// Allow and Deny are the client networks the stream allows and
	// denies, comma-separated CIDRs or addresses. Empty means every
	// network and none.
	Allow, Deny string
}

// tokenValue is layout.AccessHeader's value for a private stream.
var tokenValue = []string{"token"}

// setAccess puts the access rules of stream on h.
func (s *Server) setAccess(h http.Header, stream string) {
	if s.cfg.Access == nil {
		return
	}
	a := s.cfg.Access(stream)
	if a.Private {
		h[layout.AccessHeader] = tokenValue
	}
	if a.Allow != "" {
		h.Set(layout.AllowHeader, a.Allow)
	}
	if a.Deny != "" {
		h.Set(layout.DenyHeader, a.Deny)
	}
}

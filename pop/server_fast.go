package pop

import (
	"fmt"
	"net"
	"net/http"

	"github.com/golivestream/live/internal/fastpath"
	"github.com/golivestream/live/internal/layout"
)

// Serve serves hs (whose Handler serves this PoP, directly or through a
// mux) on ln, with a fast path (package fastpath) in front of net/http
// for what nearly every request to a PoP is: a plain HTTP/1.1 GET or HEAD
// of a path under layout.Prefix or layout.VODPrefix. A connection's first request the fast
// path does not take hands the connection to hs for the rest of its
// life. hs's ReadHeaderTimeout, IdleTimeout and WriteTimeout apply to the
// fast path too. Plain TCP only: for TLS use hs.ServeTLS.
//
// Like hs.Serve it returns http.ErrServerClosed after hs.Shutdown or
// hs.Close; it returns once the fast path's connections have ended as
// well: idle ones at once, busy ones after their response.
func (s *Server) Serve(hs *http.Server, ln net.Listener) error {
	handler := hs.Handler
	if handler == nil {
		handler = s
	}
	f, err := fastpath.New(fastpath.Config{
		HTTP:       hs,
		Handler:    handler,
		Headers:    requestHeaders,
		Prefixes:   []string{layout.Prefix, layout.VODPrefix, layout.TokenPrefix},
		Answered:   s.metrics.fastRequests.Inc,
		HandedOver: s.metrics.handoffs.Inc,
		Logger:     s.log,
	})
	if err != nil {
		return fmt.Errorf("pop: %w", err)
	}
	return f.Serve(ln)
}

// requestHeaders are the request headers ServeHTTP reads for a path under
// layout.Prefix (serve, serveRange, precondition, fromPeer, load.seen):
// the fast path gives its requests these and no others.
var requestHeaders = []string{
	"User-Agent", "Range", "If-Range", "If-None-Match", "If-Match",
	"If-Modified-Since", "If-Unmodified-Since", HopHeader, "X-Forwarded-For",
}

// Package httpserve holds what every HTTP server of ours shares: one
// http.Server with our timeouts, the request rules that apply to every
// handler, and the bound on byte ranges.
package httpserve

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// New returns an http.Server for h with our timeouts: a request head
// within 10 s of the connection or of its first byte, a whole request
// within 30 s, a response within 60 s (a client that stops reading lets
// go of it), 120 s idle between requests, heads of at most 64 KiB. h is
// wrapped by Handler. log receives net/http's own errors at WARN; nil
// means slog's default logger.
func New(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           Handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Handler applies to every request what net/http leaves to the handler:
// a request with a Transfer-Encoding ends its connection once answered.
//
// RFC 9112 6.1: a request with both Content-Length and Transfer-Encoding
// may be an attempt at request smuggling, and "the server MUST close the
// connection after responding to such a request". net/http drops the
// Content-Length of such a request before the handler sees it and keeps
// the connection, so the two cannot be told apart here: every request
// with a chunked body closes its connection. Our servers take request
// bodies only for small API calls, which clients send with a length.
func Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// MaxRanges is the most byte ranges a Range header may ask for: more, and
// it is ignored, as RFC 9110 14.2 allows, and the whole object is sent
// (nginx's max_ranges). A player asks for one; thousands of tiny ranges
// would make a multipart answer many times larger than the object.
const MaxRanges = 16

// LimitRanges drops a Range header of more than MaxRanges ranges from h,
// and reports whether it did.
func LimitRanges(h http.Header) bool {
	v := h["Range"]
	if len(v) == 0 || strings.Count(v[0], ",") < MaxRanges && len(v) == 1 {
		return false
	}
	delete(h, "Range")
	return true
}

// PrefixFirst sends the requests whose path starts with one of prefixes
// straight to first, and the others to rest: nearly every request a PoP
// gets is for a media path, which then skips the mux's routing.
func PrefixFirst(first, rest http.Handler, prefixes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range prefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				first.ServeHTTP(w, r)
				return
			}
		}
		rest.ServeHTTP(w, r)
	})
}

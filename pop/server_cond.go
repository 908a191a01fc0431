package pop

import (
	"net/http"
	"strings"
	"time"
)

// precondition evaluates the conditional headers of a GET or HEAD against
// o, in the order of RFC 9110 section 13.2.2, as http.ServeContent does
// for the origin: it returns 412 (Precondition Failed), 304 (Not
// Modified), or 0 to answer normally. Only a 200 is conditional.
func precondition(h http.Header, o *object) int {
	im, inm := h["If-Match"], h["If-None-Match"]
	ius, ims := h["If-Unmodified-Since"], h["If-Modified-Since"]
	if len(im)+len(inm)+len(ius)+len(ims) == 0 || o.status != http.StatusOK {
		return 0 // nearly every request: nothing more to look at
	}
	etag := o.header.Get("Etag")
	if len(im) > 0 {
		if !etagListMatches(im, etag, false) {
			return http.StatusPreconditionFailed
		}
	} else if len(ius) > 0 {
		if modified, ok := modifiedSince(o, ius[0]); ok && modified {
			return http.StatusPreconditionFailed
		}
	}
	if len(inm) > 0 {
		if etagListMatches(inm, etag, true) {
			return http.StatusNotModified
		}
		return 0 // If-Modified-Since is ignored (13.1.3)
	}
	if len(ims) > 0 {
		if modified, ok := modifiedSince(o, ims[0]); ok && !modified {
			return http.StatusNotModified
		}
	}
	return 0
}

// etagListMatches reports whether a field value list of entity tags (or
// "*", which any current representation matches) holds etag, comparing
// weakly (ignoring W/) or strongly (both must be strong).
func etagListMatches(values []string, etag string, weak bool) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "*" {
				return true
			}
			if etag == "" {
				continue
			}
			a, aWeak := strings.CutPrefix(item, "W/")
			b, bWeak := strings.CutPrefix(etag, "W/")
			if a == b && (weak || !aWeak && !bWeak) {
				return true
			}
		}
	}
	return false
}

// modifiedSince reports whether o was modified after the HTTP date since,
// to the second; ok is false if either date is missing or malformed, and
// the condition is then ignored.
func modifiedSince(o *object, since string) (modified, ok bool) {
	t, err := http.ParseTime(since)
	if err != nil {
		return false, false
	}
	lm, err := http.ParseTime(o.header.Get("Last-Modified"))
	if err != nil {
		return false, false
	}
	return lm.Truncate(time.Second).After(t), true
}

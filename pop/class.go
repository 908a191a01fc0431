package pop

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// class is the kind of object a URL names; it decides caching defaults and
// labels metrics.
type class int

const (
	classOther    class = iota // passed through, never cached
	classPlaylist              // HLS playlist
	classManifest              // DASH MPD
	classInit                  // init segment
	classSegment               // media segment
)

func (c class) String() string {
	return [...]string{"other", "playlist", "manifest", "init", "segment"}[c]
}

// isManifest reports whether objects of c change at their URL.
func (c class) isManifest() bool { return c == classPlaylist || c == classManifest }

// freshness is what a response's Cache-Control says about keeping it.
type freshness struct {
	ttl       time.Duration
	cacheable bool
}

// TTLDirective is the origin's Cache-Control extension giving a lifetime in
// milliseconds: half a segment for playlists, so PoPs refresh them that often.
const TTLDirective = layout.TTLDirective

// parseFreshness reads the lifetime of a response of class c: our
// millisecond extension, then s-maxage, then max-age (RFC 9111 5.2.2); with
// none of them, a day for segments (immutable in live streaming) and minTTL
// for manifests. No-store and private responses are not cached. A lifetime
// of zero becomes minTTL: requests arriving together still share one fetch.
func parseFreshness(c class, h http.Header, status int, minTTL, negativeTTL time.Duration) freshness {
	switch {
	case status == http.StatusNotFound:
		return freshness{ttl: negativeTTL, cacheable: true}
	case status != http.StatusOK:
		return freshness{}
	}
	f := freshness{cacheable: true}
	var maxAge, sMaxAge, ms time.Duration = -1, -1, -1
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			name = strings.ToLower(name)
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			switch {
			case name == "no-store" || name == "private":
				f.cacheable = false
			case name == "max-age" && err == nil:
				maxAge = time.Duration(n) * time.Second
			case name == "s-maxage" && err == nil:
				sMaxAge = time.Duration(n) * time.Second
			case name == TTLDirective && err == nil:
				ms = time.Duration(n) * time.Millisecond
			}
		}
	}
	switch {
	case ms >= 0:
		f.ttl = ms
	case sMaxAge >= 0:
		f.ttl = sMaxAge
	case maxAge >= 0:
		f.ttl = maxAge
	case !c.isManifest():
		f.ttl = 24 * time.Hour
	}
	f.ttl = max(f.ttl, minTTL)
	return f
}

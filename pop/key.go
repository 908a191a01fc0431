package pop

import (
	"net/url"
	"slices"
	"strings"
)

// defaultQueryKeys returns the query parameters kept by default: the HLS
// delivery directives (RFC 8216bis 6.2.5.1), which name different
// playlists. Our origin uses none of them yet.
func defaultQueryKeys() []string { return []string{"_HLS_msn", "_HLS_part", "_HLS_skip"} }

// cacheKey returns the cache key of a request for a cached class: its
// path as sent, and of its query only the parameters in keep, sorted. The
// same key is what the PoP asks upstream for. Any other parameter (a
// viewer's token, a player's cache buster) would otherwise make each
// viewer a cache key of their own and send each one to the origin.
func cacheKey(u *url.URL, keep []string) string {
	path := u.EscapedPath() // as sent; no allocation for a plain path
	if u.RawQuery == "" || len(keep) == 0 {
		return path
	}
	var kept []string
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil && slices.Contains(keep, n) {
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		return path
	}
	slices.Sort(kept)
	return path + "?" + strings.Join(kept, "&")
}

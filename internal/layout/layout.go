// Package layout is the URL layout of live streams, shared by the origin
// that serves it and the PoPs that cache it:
//
//	/live/{stream}/index.m3u8                      HLS multivariant playlist
//	/live/{stream}/manifest.mpd                    DASH MPD
//	/live/{stream}/{epoch}/{rendition}/index.m3u8  HLS media playlist
//	/live/{stream}/{epoch}/{rendition}/init.mp4    CMAF init segment
//	/live/{stream}/{epoch}/{rendition}/{n}.m4s     CMAF media segment n
//	/live/{stream}/{epoch}/{rendition}/{n}.{p}.m4s part p of segment n (LL-HLS)
//
// An encrypted stream's keys are delivered under the same prefix, so that
// a playback token in the path covers them too (issue #25); they are never
// cached:
//
//	/live/{stream}/license                         ClearKey license requests (POST)
//	/live/{stream}/keys/{kid}                      one key: its HLS key URI (GET), or a license request (POST)
//
// A stream with a rewind window (DVR) has manifests of their own that
// cover it, beside the live ones:
//
//	/live/{stream}/dvr.m3u8                        HLS multivariant playlist of the DVR window
//	/live/{stream}/dvr.mpd                         DASH MPD of the DVR window
//	/live/{stream}/{epoch}/{rendition}/dvr.m3u8    HLS media playlist of the DVR window
//
// An archived epoch is a VOD, and a clip cut from one is a VOD of its
// own, with manifests under /vod/ whose segment URIs lead, relatively,
// to the epoch's files under /live/: an object has one URL, whether it is
// served from the origin's memory or from the archive.
//
//	/vod/{stream}/{epoch}/index.m3u8               HLS multivariant playlist
//	/vod/{stream}/{epoch}/manifest.mpd             DASH MPD (static)
//	/vod/{stream}/{epoch}/{rendition}/index.m3u8   HLS media playlist
//	/vod/{stream}/clips/{clip}/...                 the same three, of a clip
//
// Every object has exactly one spelling: a stream name of
// [A-Za-z0-9_-]{1,64}, an epoch in base 36 ([0-9a-z], no leading zero), a
// rendition of lower-case letters and a number ("v0", "a0"), segment
// numbers in decimal without leading zeros, and no %-escapes. Parse
// refuses every other spelling, so that a cache keyed by the path holds
// each object once and an origin never serves one object under two names.
//
// Of the query, only the HLS delivery directives of a media playlist
// name another object (RFC 8216bis 6.2.5); Query keeps those, in their
// canonical form, and nothing else.
package layout

import (
	"strconv"
	"strings"
)

// Prefix is the path prefix of every live object.
const Prefix = "/live/"

// VODPrefix is the path prefix of the manifests of archived epochs and
// clips.
const VODPrefix = "/vod/"

// ClipsDir stands in place of an epoch in the paths of a clip's
// manifests, /vod/{stream}/clips/{clip}/. No epoch spells it: "clips" in
// base 36 is a millisecond of 1970.
const ClipsDir = "clips"

// Under reports whether path is under Prefix or VODPrefix: a path the
// layout may name an object at.
func Under(path string) bool {
	return strings.HasPrefix(path, Prefix) || strings.HasPrefix(path, VODPrefix)
}

// TokenPrefix begins the paths that carry a playback token ahead of an
// object's path: /t/{token}/live/... (SplitToken). Relative URIs in the
// playlists and MPDs resolve under it, so a player carries the token on
// every request without per-viewer manifests.
const TokenPrefix = "/t/"

// MaxToken bounds a token's length in a path.
const MaxToken = 2048

// SplitToken splits a path of the form /t/{token}/live/... or
// /t/{token}/vod/... into the token and the object's path; ok is false
// for any other path. A token is
// [A-Za-z0-9_.-]{1,MaxToken} (a JWT in base64url). It allocates nothing.
func SplitToken(path string) (token, rest string, ok bool) {
	after, found := strings.CutPrefix(path, TokenPrefix)
	if !found {
		return "", path, false
	}
	i := strings.IndexByte(after, '/')
	if i < 1 || i > MaxToken || !Under(after[i:]) {
		return "", path, false
	}
	for j := 0; j < i; j++ {
		if !tokenChars[after[j]] {
			return "", path, false
		}
	}
	return after[:i], after[i:], true
}

// tokenChars are the bytes a token may hold: [A-Za-z0-9_.-].
var tokenChars = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	return t
}()

// MaxURI bounds the length of a request's path and query, in bytes, at
// the origin and the PoP alike: room for a signed playback token in the
// path or the query, and well under what a request head may hold.
const MaxURI = 4096

// TTLDirective is the origin's Cache-Control extension giving a lifetime
// in milliseconds, which PoPs follow: max-age counts whole seconds, too
// coarse for playlists of 1-second segments. RFC 9111 5.2.3 lets other
// caches ignore it.
const TTLDirective = "live-ttl-ms"

// The headers by which an origin tells the PoPs a stream's access rules,
// on every response of the stream; the PoPs check them at the edge.
const (
	// AccessHeader is "token" for a stream that needs a signed playback
	// token; absent for a public one.
	AccessHeader = "X-Live-Access"
	// AllowHeader and DenyHeader are the client networks a stream allows
	// and denies: comma-separated CIDRs or addresses.
	AllowHeader = "X-Live-Allow"
	DenyHeader  = "X-Live-Deny"
)

// Kind is the kind of object a path names.
type Kind int

// The kinds of object of the layout.
const (
	Invalid       Kind = iota // not an object of the layout
	Multivariant              // HLS multivariant playlist
	MPD                       // DASH MPD
	MediaPlaylist             // HLS media playlist of a rendition
	Init                      // CMAF init segment of a rendition
	Segment                   // CMAF media segment of a rendition
	Part                      // an LL-HLS part: one CMAF chunk of a segment

	DVRMultivariant  // HLS multivariant playlist of a stream's DVR window
	DVRMPD           // DASH MPD of a stream's DVR window
	DVRMediaPlaylist // HLS media playlist of a rendition's DVR window

	VODMultivariant  // HLS multivariant playlist of an archived epoch or a clip
	VODMPD           // DASH MPD (static) of an archived epoch or a clip
	VODMediaPlaylist // HLS media playlist of a rendition of an archived epoch or a clip

	License // ClearKey license endpoint of an encrypted stream
	Key     // one content key of an encrypted stream, by its KID
)

// IsKey reports whether objects of kind k deliver content keys: answered
// to each viewer on its own, never cached.
func (k Kind) IsKey() bool { return k == License || k == Key }

// KeysDir is the directory of a stream's keys, /live/{stream}/keys/{kid}.
// No epoch spells it: "keys" is not a rendition, and a key path has one
// element fewer than a rendition's files.
const KeysDir = "keys"

// LicenseFile is the file name of a stream's ClearKey license endpoint.
const LicenseFile = "license"

// ValidKID reports whether s is a key ID as key paths spell it: 32
// lower-case hex digits.
func ValidKID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// IsEntry reports whether objects of kind k are what a player is given
// to start a presentation: a multivariant playlist or an MPD, live, of a
// DVR window or of a VOD.
func (k Kind) IsEntry() bool {
	switch k {
	case Multivariant, MPD, DVRMultivariant, DVRMPD, VODMultivariant, VODMPD:
		return true
	}
	return false
}

// Object is what a path of the layout names. Its strings are substrings of
// the path parsed: Parse allocates nothing.
type Object struct {
	Kind   Kind
	Stream string
	// Epoch and Rendition are empty for a stream's manifests
	// (Multivariant, MPD, DVRMultivariant, DVRMPD); Rendition is empty
	// for an epoch's or a clip's VODMultivariant and VODMPD.
	Epoch, Rendition string
	// Clip is the clip a VOD manifest is of (its Epoch is then empty);
	// empty otherwise.
	Clip string
	// KID is a Key's key ID, 32 lower-case hex digits; empty otherwise.
	KID string
	// Number is a Segment's number, or the number of a Part's segment.
	Number uint64
	// Part is a Part's index in its segment, from 0.
	Part int
	// Dir is the rendition's directory, "/live/{stream}/{epoch}/{rendition}/",
	// for the files of a rendition, "/vod/{stream}/{epoch}/{rendition}/"
	// or "/vod/{stream}/clips/{clip}/{rendition}/" for a VODMediaPlaylist;
	// empty otherwise.
	Dir string
}

// Parse reports what path (a URL path as sent, not unescaped) names, and
// false when it is no object of the layout in its canonical spelling.
func Parse(path string) (Object, bool) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return parseVOD(path)
	}
	var o Object
	o.Stream, rest, ok = strings.Cut(rest, "/")
	if !ok || !ValidStream(o.Stream) {
		return Object{}, false
	}
	if !strings.Contains(rest, "/") {
		switch rest {
		case "index.m3u8":
			o.Kind = Multivariant
		case "manifest.mpd":
			o.Kind = MPD
		case "dvr.m3u8":
			o.Kind = DVRMultivariant
		case "dvr.mpd":
			o.Kind = DVRMPD
		case LicenseFile:
			o.Kind = License
		default:
			return Object{}, false
		}
		return o, true
	}
	o.Epoch, rest, _ = strings.Cut(rest, "/")
	if o.Epoch == KeysDir {
		if !ValidKID(rest) {
			return Object{}, false
		}
		o.Epoch, o.Kind, o.KID = "", Key, rest
		return o, true
	}
	var file string
	o.Rendition, file, ok = strings.Cut(rest, "/")
	if !ok || !ValidEpoch(o.Epoch) || !ValidRendition(o.Rendition) || strings.Contains(file, "/") {
		return Object{}, false
	}
	o.Dir = path[:len(path)-len(file)]
	switch file {
	case "index.m3u8":
		o.Kind = MediaPlaylist
	case "dvr.m3u8":
		o.Kind = DVRMediaPlaylist
	case "init.mp4":
		o.Kind = Init
	default:
		num, ok := strings.CutSuffix(file, ".m4s")
		if !ok {
			return Object{}, false
		}
		num, part, isPart := strings.Cut(num, ".")
		if o.Number, ok = ParseNumber(num); !ok {
			return Object{}, false
		}
		o.Kind = Segment
		if isPart {
			p, ok := ParseNumber(part)
			if !ok || p >= MaxParts {
				return Object{}, false
			}
			o.Kind, o.Part = Part, int(p)
		}
	}
	return o, true
}

// parseVOD is Parse for the paths under VODPrefix.
func parseVOD(path string) (Object, bool) {
	rest, ok := strings.CutPrefix(path, VODPrefix)
	if !ok {
		return Object{}, false
	}
	var o Object
	var dir string
	o.Stream, rest, ok = strings.Cut(rest, "/")
	if !ok || !ValidStream(o.Stream) {
		return Object{}, false
	}
	dir, rest, ok = strings.Cut(rest, "/")
	switch {
	case !ok:
		return Object{}, false
	case dir == ClipsDir:
		o.Clip, rest, ok = strings.Cut(rest, "/")
		if !ok || !ValidStream(o.Clip) {
			return Object{}, false
		}
	case ValidEpoch(dir):
		o.Epoch = dir
	default:
		return Object{}, false
	}
	file := rest
	if r, f, ok := strings.Cut(rest, "/"); ok {
		if !ValidRendition(r) || f != "index.m3u8" {
			return Object{}, false
		}
		o.Rendition, o.Kind, o.Dir = r, VODMediaPlaylist, path[:len(path)-len(f)]
		return o, true
	}
	switch file {
	case "index.m3u8":
		o.Kind = VODMultivariant
	case "manifest.mpd":
		o.Kind = VODMPD
	default:
		return Object{}, false
	}
	return o, true
}

// MaxParts bounds the index of a part in its segment.
const MaxParts = 1000

// PartPath is the file name of part p of segment n, relative to its
// rendition's directory.
func PartPath(n uint64, p int) string {
	return strconv.FormatUint(n, 10) + "." + strconv.Itoa(p) + ".m4s"
}

// SegmentPath is the file name of segment n, relative to its rendition's
// directory.
func SegmentPath(n uint64) string { return strconv.FormatUint(n, 10) + ".m4s" }

// ValidStream reports whether name is a stream name: [A-Za-z0-9_-]{1,64}.
// Names only index memory: nothing a client sends reaches a filesystem.
func ValidStream(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidEpoch reports whether e is an epoch as the origin writes them: a
// positive integer in base 36, lower case, without leading zeros, that
// fits an int64.
func ValidEpoch(e string) bool {
	if len(e) == 0 || len(e) > 13 || e[0] == '0' {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	_, err := strconv.ParseInt(e, 36, 64)
	return err == nil
}

// ValidRendition reports whether r is a rendition's name: one to eight
// lower-case letters, then a number without leading zeros ("v0", "v12",
// "a0").
func ValidRendition(r string) bool {
	i := 0
	for i < len(r) && 'a' <= r[i] && r[i] <= 'z' {
		i++
	}
	if i == 0 || i > 8 {
		return false
	}
	_, ok := ParseNumber(r[i:])
	return ok && len(r)-i <= 4
}

// ParseNumber parses a decimal number in its one spelling: digits only,
// no sign, no leading zeros, within uint64.
func ParseNumber(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

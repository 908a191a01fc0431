package layout

import (
	"errors"
	"strconv"
	"strings"
)

// Directives are the HLS delivery directives of a request for a media
// playlist (RFC 8216bis 6.2.5): the playlist a blocking reload waits for
// (_HLS_msn, _HLS_part) and a delta update (_HLS_skip).
type Directives struct {
	// MSN and Part are the media sequence number and part asked for;
	// HasMSN and HasPart say whether they were.
	MSN, Part       uint64
	HasMSN, HasPart bool
	// Skip is "", "YES" or "v2".
	Skip string
}

// ErrDirective is the error of a query whose delivery directives are
// malformed: the server answers 400 Bad Request.
var ErrDirective = errors.New("malformed delivery directive")

// ParseDirectives reads the delivery directives of a media playlist's raw
// query; any other parameter (a viewer's token, a cache buster) is
// ignored. A directive's name must be spelled as the RFC spells it, its
// value must be canonical, and it may appear once. It allocates nothing.
//
// RFC 8216bis 6.2.5.2: "If the _HLS_part parameter is present without an
// _HLS_msn parameter, the server MUST return an error" (400).
func ParseDirectives(rawQuery string) (Directives, error) {
	var d Directives
	for rest := rawQuery; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		name, value, _ := strings.Cut(part, "=")
		var ok bool
		switch name {
		case "_HLS_msn":
			if d.HasMSN {
				return Directives{}, ErrDirective
			}
			d.MSN, ok = ParseNumber(value)
			d.HasMSN = true
		case "_HLS_part":
			if d.HasPart {
				return Directives{}, ErrDirective
			}
			d.Part, ok = ParseNumber(value)
			d.HasPart = true
		case "_HLS_skip":
			ok = d.Skip == "" && (value == "YES" || value == "v2")
			d.Skip = value
		default:
			continue
		}
		if !ok {
			return Directives{}, ErrDirective
		}
	}
	if d.HasPart && !d.HasMSN {
		return Directives{}, ErrDirective
	}
	return d, nil
}

// Empty reports whether d has no directive.
func (d Directives) Empty() bool { return !d.HasMSN && d.Skip == "" }

// Query returns d as a canonical query (without '?'): _HLS_msn, _HLS_part
// and _HLS_skip in that order; "" for none.
func (d Directives) Query() string {
	if d.Empty() {
		return ""
	}
	b := make([]byte, 0, 48)
	if d.HasMSN {
		b = append(b, "_HLS_msn="...)
		b = strconv.AppendUint(b, d.MSN, 10)
		if d.HasPart {
			b = append(b, "&_HLS_part="...)
			b = strconv.AppendUint(b, d.Part, 10)
		}
	}
	if d.Skip != "" {
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, "_HLS_skip="...)
		b = append(b, d.Skip...)
	}
	return string(b)
}

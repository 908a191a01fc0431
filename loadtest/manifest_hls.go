package loadtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// maxListed bounds the segments of one list we accept.
const maxListed = 20000

// parseMultivariant reads an HLS multivariant playlist.
func parseMultivariant(body []byte) (*entry, error) {
	var pl playlist.Multivariant
	if err := pl.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("multivariant playlist: %w", err)
	}
	e := &entry{}
	for _, v := range pl.Variants {
		if v == nil || v.URI == "" {
			continue
		}
		vr := variant{bandwidth: v.Bandwidth, id: v.URI}
		if v.Audio != "" {
			vr.audio = audioURI(pl.Renditions, v.Audio)
		}
		e.variants = append(e.variants, vr)
	}
	if len(e.variants) == 0 {
		return nil, errors.New("multivariant playlist: no variant")
	}
	return e, nil
}

// audioURI returns the URI of the audio rendition of group a player
// picks: the DEFAULT one, else the first (RFC 8216bis 4.4.6.1.1).
func audioURI(rs []*playlist.MultivariantRendition, group string) string {
	uri := ""
	for _, r := range rs {
		if r == nil || r.Type != playlist.MultivariantRenditionTypeAudio || r.GroupID != group || r.URI == nil {
			continue
		}
		if r.Default {
			return *r.URI
		}
		if uri == "" {
			uri = *r.URI
		}
	}
	return uri
}

// parseMedia reads an HLS media playlist, with the LL-HLS tags of RFC
// 8216bis when it has them (lowLatency). A delta update (EXT-X-SKIP)
// lists from the first segment it does not skip.
func parseMedia(body []byte) (*segmentList, error) {
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("media playlist: %w", err)
	}
	if pl.MediaSequence < 0 || len(pl.Segments) > maxListed || len(pl.Parts) > maxListed {
		return nil, errors.New("media playlist: bad media sequence or too many segments")
	}
	l := &segmentList{
		first:   uint64(pl.MediaSequence),
		ended:   pl.Endlist,
		refresh: time.Duration(pl.TargetDuration) * time.Second,
	}
	// RFC 8216bis 4.4.5.2: EXT-X-SKIP stands for the first
	// SKIPPED-SEGMENTS segments after EXT-X-MEDIA-SEQUENCE.
	if pl.Skip != nil {
		l.first += uint64(pl.Skip.SkippedSegments)
	}
	if pl.Map != nil {
		l.init = pl.Map.URI
	}
	dated := false
	for _, s := range pl.Segments {
		if s == nil {
			return nil, errors.New("media playlist: empty segment")
		}
		l.durations = append(l.durations, s.Duration)
		l.uris = append(l.uris, s.URI)
		dated = dated || s.DateTime != nil
	}
	if dated {
		// RFC 8216bis 4.4.4.6: a segment without its own date follows
		// the one before it; those before the first date are dated back
		// from it.
		l.dates = make([]time.Time, len(pl.Segments))
		first := -1
		for i, s := range pl.Segments {
			switch {
			case s.DateTime != nil:
				l.dates[i] = *s.DateTime
				if first < 0 {
					first = i
				}
			case i > 0:
				l.dates[i] = l.dates[i-1].Add(l.durations[i-1])
			}
		}
		for i := first - 1; i >= 0; i-- {
			l.dates[i] = l.dates[i+1].Add(-l.durations[i])
		}
	}
	if l.refresh <= 0 {
		l.refresh = time.Second
	}
	if err := lowLatency(l, &pl); err != nil {
		return nil, fmt.Errorf("media playlist: %w", err)
	}
	return l, nil
}

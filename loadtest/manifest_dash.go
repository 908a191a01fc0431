package loadtest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The few parts of an MPD (ISO/IEC 23009-1) a live player of our origin
// needs. encoding/xml with small structs, not dash-mpd: the MPD comes from
// the network, and dash-mpd v0.17.0's decoder can loop on malformed input.
type xmlMPD struct {
	Type                string      `xml:"type,attr"`
	MinimumUpdatePeriod string      `xml:"minimumUpdatePeriod,attr"`
	Periods             []xmlPeriod `xml:"Period"`
}

type xmlPeriod struct {
	AdaptationSets []xmlAdaptationSet `xml:"AdaptationSet"`
}

type xmlAdaptationSet struct {
	ContentType     string              `xml:"contentType,attr"`
	MimeType        string              `xml:"mimeType,attr"`
	SegmentTemplate *xmlSegmentTemplate `xml:"SegmentTemplate"`
	Representations []xmlRepresentation `xml:"Representation"`
}

type xmlRepresentation struct {
	ID              string              `xml:"id,attr"`
	Bandwidth       int                 `xml:"bandwidth,attr"`
	MimeType        string              `xml:"mimeType,attr"`
	SegmentTemplate *xmlSegmentTemplate `xml:"SegmentTemplate"`
}

type xmlSegmentTemplate struct {
	Media          string  `xml:"media,attr"`
	Initialization string  `xml:"initialization,attr"`
	StartNumber    *uint64 `xml:"startNumber,attr"`
	Timescale      *uint64 `xml:"timescale,attr"`
	Timeline       []xmlS  `xml:"SegmentTimeline>S"`
}

type xmlS struct {
	D uint64 `xml:"d,attr"`
	R int64  `xml:"r,attr"`
}

// parseMPD reads a live MPD with SegmentTemplate ($Number$) and
// SegmentTimeline, as our origin writes it (origin/manifest_dash.go): the
// last Period, one variant per video Representation with the first audio
// Representation alongside (or one per audio Representation without
// video).
func parseMPD(body []byte) (*entry, error) {
	var m xmlMPD
	d := xml.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	if len(m.Periods) == 0 {
		return nil, errors.New("mpd: no Period")
	}
	// ISO/IEC 23009-1 5.4: without minimumUpdatePeriod the MPD does not
	// change; a static MPD describes a finished presentation.
	ended := m.Type == "static"
	refresh := time.Second
	if m.MinimumUpdatePeriod != "" {
		mup, err := parseISODuration(m.MinimumUpdatePeriod)
		if err != nil {
			return nil, fmt.Errorf("mpd: minimumUpdatePeriod: %w", err)
		}
		refresh = max(mup, 100*time.Millisecond)
	}
	e := &entry{lists: map[string]*segmentList{}}
	var video, audio []variant
	for _, as := range m.Periods[len(m.Periods)-1].AdaptationSets {
		for _, r := range as.Representations {
			tpl := r.SegmentTemplate
			if tpl == nil {
				tpl = as.SegmentTemplate
			}
			if r.ID == "" || tpl == nil {
				continue
			}
			l, err := timelineList(tpl, r.ID)
			if err != nil {
				return nil, fmt.Errorf("mpd: Representation %q: %w", r.ID, err)
			}
			l.ended, l.refresh = ended, refresh
			e.lists[r.ID] = l
			v := variant{bandwidth: r.Bandwidth, id: r.ID}
			switch {
			case isType(as, r, "video"):
				video = append(video, v)
			case isType(as, r, "audio"):
				audio = append(audio, v)
			}
		}
	}
	switch {
	case len(video) > 0:
		for _, v := range video {
			if len(audio) > 0 {
				v.audio = audio[0].id
			}
			e.variants = append(e.variants, v)
		}
	default:
		e.variants = audio
	}
	if len(e.variants) == 0 {
		return nil, errors.New("mpd: no playable Representation")
	}
	return e, nil
}

func isType(as xmlAdaptationSet, r xmlRepresentation, kind string) bool {
	return as.ContentType == kind || strings.HasPrefix(as.MimeType, kind+"/") || strings.HasPrefix(r.MimeType, kind+"/")
}

// timelineList expands a SegmentTemplate's SegmentTimeline for
// Representation id.
func timelineList(tpl *xmlSegmentTemplate, id string) (*segmentList, error) {
	if !strings.Contains(tpl.Media, "$Number") {
		return nil, errors.New("only $Number$ media templates are supported")
	}
	if len(tpl.Timeline) == 0 {
		return nil, errors.New("no SegmentTimeline")
	}
	timescale := uint64(1)
	if tpl.Timescale != nil && *tpl.Timescale > 0 {
		timescale = *tpl.Timescale
	}
	l := &segmentList{
		media: strings.ReplaceAll(tpl.Media, "$RepresentationID$", id),
		init:  strings.ReplaceAll(tpl.Initialization, "$RepresentationID$", id),
	}
	if tpl.StartNumber != nil {
		l.first = *tpl.StartNumber
	} else {
		l.first = 1 // ISO/IEC 23009-1 5.3.9.5.3: startNumber defaults to 1
	}
	for _, s := range tpl.Timeline {
		// A negative @r repeats up to the next S or the end of the Period;
		// at the live edge that is this S alone.
		for range max(s.R, 0) + 1 {
			if len(l.durations) >= maxListed {
				return nil, errors.New("too many segments")
			}
			l.durations = append(l.durations, ticksToDuration(s.D, timescale))
		}
	}
	return l, nil
}

// ticksToDuration converts media ticks without overflow.
func ticksToDuration(ticks, timescale uint64) time.Duration {
	secs, rem := ticks/timescale, ticks%timescale
	if secs > uint64(time.Hour/time.Second) {
		return time.Hour
	}
	return time.Duration(secs)*time.Second + time.Duration(float64(rem)/float64(timescale)*float64(time.Second))
}

// parseISODuration reads an xs:duration of days, hours, minutes and
// seconds ("PT1S", "PT0.5S", "P1DT2H"); years and months are refused.
func parseISODuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	var d float64
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			inTime, rest = true, rest[1:]
			continue
		}
		i := strings.IndexAny(rest, "DHMS")
		if i <= 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || v < 0 || v > 1e6 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		switch unit := rest[i]; {
		case unit == 'D' && !inTime:
			d += v * 86400
		case unit == 'H' && inTime:
			d += v * 3600
		case unit == 'M' && inTime:
			d += v * 60
		case unit == 'S' && inTime:
			d += v
		default:
			return 0, fmt.Errorf("bad duration %q", s)
		}
		rest = rest[i+1:]
	}
	return time.Duration(d * float64(time.Second)), nil
}

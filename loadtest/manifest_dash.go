package loadtest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golivestream/live/internal/mediatime"
)

// The few parts of an MPD (ISO/IEC 23009-1) a live player of our origin
// needs. encoding/xml with small structs, not dash-mpd: the MPD comes from
// the network, and dash-mpd v0.17.0's decoder can loop on malformed input.
type xmlMPD struct {
	Type                  string      `xml:"type,attr"`
	MinimumUpdatePeriod   string      `xml:"minimumUpdatePeriod,attr"`
	AvailabilityStartTime string      `xml:"availabilityStartTime,attr"`
	Latencies             []xmlTarget `xml:"ServiceDescription>Latency"`
	Periods               []xmlPeriod `xml:"Period"`
}

type xmlTarget struct {
	Target *uint64 `xml:"target,attr"` // milliseconds
}

type xmlPeriod struct {
	Start          string             `xml:"start,attr"`
	AdaptationSets []xmlAdaptationSet `xml:"AdaptationSet"`
}

type xmlAdaptationSet struct {
	ContentType     string              `xml:"contentType,attr"`
	MimeType        string              `xml:"mimeType,attr"`
	PRTs            []xmlPRT            `xml:"ProducerReferenceTime"`
	SegmentTemplate *xmlSegmentTemplate `xml:"SegmentTemplate"`
	Representations []xmlRepresentation `xml:"Representation"`
}

type xmlRepresentation struct {
	ID              string              `xml:"id,attr"`
	Bandwidth       int                 `xml:"bandwidth,attr"`
	MimeType        string              `xml:"mimeType,attr"`
	PRTs            []xmlPRT            `xml:"ProducerReferenceTime"`
	SegmentTemplate *xmlSegmentTemplate `xml:"SegmentTemplate"`
}

// xmlPRT is a ProducerReferenceTime (ISO/IEC 23009-1 5.12).
type xmlPRT struct {
	WallClockTime    string `xml:"wallClockTime,attr"`
	PresentationTime uint64 `xml:"presentationTime,attr"`
}

type xmlSegmentTemplate struct {
	Media                    string  `xml:"media,attr"`
	Initialization           string  `xml:"initialization,attr"`
	StartNumber              *uint64 `xml:"startNumber,attr"`
	Timescale                *uint64 `xml:"timescale,attr"`
	PresentationTimeOffset   uint64  `xml:"presentationTimeOffset,attr"`
	AvailabilityTimeOffset   string  `xml:"availabilityTimeOffset,attr"`
	AvailabilityTimeComplete *bool   `xml:"availabilityTimeComplete,attr"`
	Timeline                 []xmlS  `xml:"SegmentTimeline>S"`
}

type xmlS struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R int64   `xml:"r,attr"`
}

// dashTiming is where a Representation's segments are in time: on the
// MPD's timeline, which says when they are available, and on ingest's
// wall clock, which says how late a player plays them. Immutable once
// built.
type dashTiming struct {
	// starts are the listed segments' presentation times, from the
	// Period's start (S@t less presentationTimeOffset).
	starts    []time.Duration
	timescale uint64
	// availZero is where the MPD's timeline puts presentation time 0:
	// availabilityStartTime plus Period@start (ISO/IEC 23009-1 5.3.9.5.3).
	// Zero when the MPD gives no availabilityStartTime.
	availZero time.Time
	// wallZero is when presentation time 0 reached ingest, by the
	// ProducerReferenceTime (5.12); availZero without one.
	wallZero time.Time
	// availOffset is SegmentTemplate@availabilityTimeOffset: how long
	// before its end a segment may be requested. chunked says it is
	// available while incomplete (@availabilityTimeComplete false):
	// low-latency DASH, its chunks sent as they are produced.
	availOffset time.Duration
	chunked     bool
	// target is the ServiceDescription's Latency@target; zero without.
	target time.Duration
	// pto is presentationTimeOffset: media time tfdt less pto is
	// presentation time.
	pto time.Duration
}

// dated reports whether presentation times can be put on a wall clock.
func (d *dashTiming) dated() bool { return !d.wallZero.IsZero() }

// wall returns when presentation time t reached ingest.
func (d *dashTiming) wall(t time.Duration) time.Time { return d.wallZero.Add(t) }

// avail returns where the MPD's timeline puts presentation time t.
func (d *dashTiming) avail(t time.Duration) time.Time { return d.availZero.Add(t) }

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
	period := m.Periods[len(m.Periods)-1]
	var availZero time.Time
	if m.AvailabilityStartTime != "" {
		ast, err := time.Parse(time.RFC3339Nano, m.AvailabilityStartTime)
		if err != nil {
			return nil, fmt.Errorf("mpd: availabilityStartTime: %w", err)
		}
		start := time.Duration(0)
		if period.Start != "" {
			if start, err = parseISODuration(period.Start); err != nil {
				return nil, fmt.Errorf("mpd: Period@start: %w", err)
			}
		}
		availZero = ast.Add(start)
	}
	var target time.Duration
	for _, lt := range m.Latencies {
		if lt.Target != nil && *lt.Target <= 60_000 {
			target = time.Duration(*lt.Target) * time.Millisecond
			break
		}
	}
	e := &entry{lists: map[string]*segmentList{}}
	var video, audio []variant
	for _, as := range period.AdaptationSets {
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
			prts := r.PRTs
			if len(prts) == 0 {
				prts = as.PRTs
			}
			if err := l.dash.date(tpl, availZero, prts); err != nil {
				return nil, fmt.Errorf("mpd: Representation %q: %w", r.ID, err)
			}
			l.dash.target = target
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
		dash:  &dashTiming{timescale: timescale, pto: mediaTime(tpl.PresentationTimeOffset, timescale)},
	}
	if tpl.StartNumber != nil {
		l.first = *tpl.StartNumber
	} else {
		l.first = 1 // ISO/IEC 23009-1 5.3.9.5.3: startNumber defaults to 1
	}
	var t uint64 // media time of the next S, in ticks
	for _, s := range tpl.Timeline {
		if s.T != nil {
			t = *s.T
		}
		// A negative @r repeats up to the next S or the end of the Period;
		// at the live edge that is this S alone.
		for range max(s.R, 0) + 1 {
			if len(l.durations) >= maxListed {
				return nil, errors.New("too many segments")
			}
			l.durations = append(l.durations, ticksToDuration(s.D, timescale))
			l.dash.starts = append(l.dash.starts, mediaTime(t, timescale)-l.dash.pto)
			t += s.D
		}
	}
	return l, nil
}

// date puts d's timeline on the wall clock: availZero (the MPD's), and
// the first of prts, when given, for ingest's; and reads the template's
// availability (ISO/IEC 23009-1 5.3.9.2).
func (d *dashTiming) date(tpl *xmlSegmentTemplate, availZero time.Time, prts []xmlPRT) error {
	d.availZero, d.wallZero = availZero, availZero
	if len(prts) > 0 && prts[0].WallClockTime != "" {
		w, err := time.Parse(time.RFC3339Nano, prts[0].WallClockTime)
		if err != nil {
			return fmt.Errorf("ProducerReferenceTime@wallClockTime: %w", err)
		}
		d.wallZero = w.Add(-mediaTime(prts[0].PresentationTime, d.timescale) + d.pto)
	}
	if a := tpl.AvailabilityTimeOffset; a != "" && a != "INF" {
		secs, err := strconv.ParseFloat(a, 64)
		if err != nil || secs < 0 || secs > 3600 {
			return fmt.Errorf("bad availabilityTimeOffset %q", a)
		}
		d.availOffset = time.Duration(secs * float64(time.Second))
		d.chunked = tpl.AvailabilityTimeComplete != nil && !*tpl.AvailabilityTimeComplete && d.availOffset > 0
	}
	return nil
}

// ticksToDuration converts media ticks without overflow.
func ticksToDuration(ticks, timescale uint64) time.Duration {
	secs, rem := ticks/timescale, ticks%timescale
	if secs > uint64(time.Hour/time.Second) {
		return time.Hour
	}
	return time.Duration(secs)*time.Second + time.Duration(float64(rem)/float64(timescale)*float64(time.Second))
}

// mediaTime converts a media time of ticks (a time on a timeline, which
// may be long past its start) with mediatime's conversion; values beyond
// the types' range saturate.
func mediaTime(ticks, timescale uint64) time.Duration {
	return mediatime.Duration(int64(min(ticks, math.MaxInt64)), uint32(min(timescale, math.MaxUint32)))
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

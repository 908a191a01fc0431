package origin

// The manifests of what is no longer only in memory: a stream's DVR
// window, an archived epoch (VOD) and a clip. Each is a presentation:
// the renditions of one epoch with the segments it lists, without their
// media, which the files' URLs under /live/ serve from memory or from
// the archive. The builders here are pure functions of a presentation.

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/packager"
)

// presSegment is one segment of a presentation: where it lies on its
// rendition's timeline and how big it is.
type presSegment struct {
	number          uint64
	start, duration int64 // in the rendition's timescale
	size            int64
	// disc marks a segment whose media does not follow on from the one
	// before it: a publisher that came back, a transcoder restarted, or
	// segments missing before it.
	disc bool
}

// end returns the media time just after the segment.
func (s *presSegment) end() int64 { return s.start + s.duration }

// presRendition is one rendition of a presentation.
type presRendition struct {
	id        string
	codec     string
	video     bool
	width     int
	height    int
	fps       float64 // measured; zero when unknown
	sample    int     // audio sample rate
	channels  int
	timescale uint32
	segs      []presSegment // oldest first
	// discSeq counts the discontinuities before segs[0] (a DVR window
	// that slid past them).
	discSeq int
}

// presURIs places a presentation's objects relative to its manifests.
type presURIs struct {
	// playlist is a rendition's media playlist, relative to the
	// multivariant playlist.
	playlist func(rid string) string
	// files is a rendition's directory (ending in "/", or empty for the
	// media playlist's own), relative to its media playlist.
	files func(rid string) string
	// mpdFiles is the epoch's directory (ending in "/"), relative to the
	// MPD.
	mpdFiles string
	// keys is the stream's key directory, /live/{stream}/keys/ (ending
	// in "/"), relative to a media playlist: where the key URIs of an
	// encrypted presentation lead.
	keys string
}

// presentation is what a DVR, VOD or clip manifest describes.
type presentation struct {
	epoch string
	// ast is the wall-clock time of the epoch's timeline zero: the base
	// of EXT-X-PROGRAM-DATE-TIME, and a DVR MPD's availabilityStartTime.
	ast        time.Time
	renditions []*presRendition
	uris       presURIs
	// live is a DVR window of a stream still live: playlists without
	// ENDLIST, a dynamic MPD. Otherwise the presentation is on demand:
	// EXT-X-PLAYLIST-TYPE:VOD and a static MPD.
	live bool
	// depth is a live presentation's timeShiftBufferDepth, segment the
	// target segment duration, now the MPD's publishTime.
	depth, segment time.Duration
	now            time.Time
	// keys are the keys of an encrypted presentation (vod_protect.go);
	// nil for a clear one.
	keys *presKeys
}

// origin is the earliest media time of any rendition, as a duration on
// the epoch's timeline: where an on-demand presentation begins.
func (p *presentation) origin() time.Duration {
	first := time.Duration(math.MaxInt64)
	for _, r := range p.renditions {
		if len(r.segs) > 0 {
			first = min(first, mediatime.Duration(r.segs[0].start, r.timescale))
		}
	}
	if first == math.MaxInt64 {
		return 0
	}
	return first
}

// end is the latest media time just after a segment of any rendition.
func (p *presentation) end() time.Duration {
	var end time.Duration
	for _, r := range p.renditions {
		if n := len(r.segs); n > 0 {
			end = max(end, mediatime.Duration(r.segs[n-1].end(), r.timescale))
		}
	}
	return end
}

// bandwidth returns the peak and average bit rates of segs.
func bandwidth(segs []presSegment, timescale uint32) (peak, average int) {
	var bytes, ticks int64
	for _, s := range segs {
		bytes += s.size
		ticks += s.duration
		if s.duration > 0 {
			peak = max(peak, int(math.Ceil(float64(s.size)*8/mediatime.Duration(s.duration, timescale).Seconds())))
		}
	}
	if ticks > 0 {
		average = int(math.Ceil(float64(bytes) * 8 / mediatime.Duration(ticks, timescale).Seconds()))
	}
	return peak, average
}

// presMultivariant renders the HLS multivariant playlist of p: one
// variant per video rendition, audio in an EXT-X-MEDIA group, as the
// live one (multivariantPlaylist), the richest rendition at or below
// startBandwidth first.
func presMultivariant(p *presentation) []byte {
	pl := playlist.Multivariant{Version: hlsVersion, IndependentSegments: true}
	var audio *presRendition
	var audioPeak, audioAvg int
	for _, r := range p.renditions {
		if !r.video && len(r.segs) > 0 {
			audio = r
			audioPeak, audioAvg = bandwidth(r.segs, r.timescale)
			channels := strconv.Itoa(max(r.channels, 1))
			uri := p.uris.playlist(r.id)
			pl.Renditions = append(pl.Renditions, &playlist.MultivariantRendition{
				Type: playlist.MultivariantRenditionTypeAudio, GroupID: "audio", Name: r.id,
				Default: true, Autoselect: true, Channels: &channels, URI: &uri,
			})
			break
		}
	}
	for _, r := range p.renditions {
		if !r.video || len(r.segs) == 0 {
			continue
		}
		peak, avg := bandwidth(r.segs, r.timescale)
		avg += audioAvg
		v := &playlist.MultivariantVariant{
			Bandwidth:        peak + audioPeak,
			AverageBandwidth: &avg,
			Codecs:           []string{r.codec},
			Resolution:       strconv.Itoa(r.width) + "x" + strconv.Itoa(r.height),
			URI:              p.uris.playlist(r.id),
		}
		if r.fps > 0 {
			fps := r.fps
			v.FrameRate = &fps
		}
		if audio != nil {
			v.Codecs = append(v.Codecs, audio.codec)
			v.Audio = "audio"
		}
		pl.Variants = append(pl.Variants, v)
	}
	startFirst(pl.Variants)
	if len(pl.Variants) == 0 && audio != nil {
		pl.Renditions = nil
		pl.Variants = append(pl.Variants, &playlist.MultivariantVariant{
			Bandwidth: audioPeak, AverageBandwidth: &audioAvg, Codecs: []string{audio.codec}, URI: p.uris.playlist(audio.id),
		})
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Multivariant cannot fail
	return b
}

// presMediaPlaylist renders the HLS media playlist of rendition r of p.
// A live one slides with its DVR window (RFC 8216bis 6.2.2: segments
// leave from the start); an on-demand one is EXT-X-PLAYLIST-TYPE:VOD with
// EXT-X-ENDLIST (RFC 8216bis 4.4.3.5).
func presMediaPlaylist(p *presentation, r *presRendition) []byte {
	files := p.uris.files(r.id)
	pl := playlist.Media{
		Version:             hlsVersion,
		IndependentSegments: true,
		TargetDuration:      1,
		Map:                 &playlist.MediaMap{URI: files + "init.mp4"},
		Endlist:             !p.live,
	}
	if !p.live {
		vod := playlist.MediaPlaylistTypeVOD
		pl.PlaylistType = &vod
	}
	if len(r.segs) > 0 {
		pl.MediaSequence = int(r.segs[0].number)
	}
	disc := r.discSeq > 0
	keys := p.keys.hls(p.uris.keys)
	for i, s := range r.segs {
		d := mediatime.Duration(s.duration, r.timescale)
		pl.TargetDuration = max(pl.TargetDuration, int(math.Round(d.Seconds())))
		// RFC 8216bis 4.4.4.6: the segment's first sample on the wall
		// clock, as in the live playlists.
		pdt := p.ast.Add(mediatime.Duration(s.start, r.timescale)).UTC()
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{
			Duration:      d,
			URI:           files + segmentPath(s.number),
			Discontinuity: s.disc && i > 0,
			DateTime:      &pdt,
			Key:           p.keys.hlsKey(keys, s.start, r.timescale), // nil: clear
		})
		disc = disc || s.disc && i > 0
	}
	if disc {
		ds := r.discSeq
		pl.DiscontinuitySequence = &ds
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Media cannot fail
	if p.keys != nil {
		b = keys.expand(b, p.keys.byHex, nil)
	}
	return b
}

// presMPD renders the MPD of p (ISO/IEC 23009-1, DASH-IF IOP): one
// Period, or one per key period of an encrypted presentation
// (presProtectedPeriods); one AdaptationSet per media type,
// SegmentTemplate with $Number$ and a SegmentTimeline per
// Representation, addressing the files the HLS playlists list. A live
// presentation is dynamic, its timeShiftBufferDepth the DVR window, on
// the epoch's own timeline; an on-demand one is static (ISO/IEC 23009-1
// 5.3.1.2, the on-demand use of the live profile), its first Period
// beginning at its first media (presentationTimeOffset).
func presMPD(p *presentation) ([]byte, error) {
	typ := "static"
	m := &mpd.MPD{
		XMLNs:         "urn:mpeg:dash:schema:mpd:2011",
		Profiles:      mpd.ListOfProfilesType(mpd.PROFILE_LIVE),
		Type:          &typ,
		MinBufferTime: durPtr(2 * p.segment),
	}
	origin := p.origin()
	if p.live {
		typ = "dynamic"
		origin = 0
		m.AvailabilityStartTime = mpd.DateTime(p.ast.UTC().Format(mpdTimeFormat))
		m.PublishTime = mpd.DateTime(p.now.UTC().Format(mpdTimeFormat))
		m.MinimumUpdatePeriod = durPtr(p.segment)
		m.TimeShiftBufferDepth = durPtr(p.depth)
		m.SuggestedPresentationDelay = durPtr(3 * p.segment)
		m.UTCTimings = []*mpd.DescriptorType{utcTiming()}
	} else {
		m.MediaPresentationDuration = durPtr(p.end() - origin)
	}
	var maxSeg time.Duration
	if p.keys == nil {
		var period *mpd.Period
		period, maxSeg = presPeriod(p, p.renditions, p.epoch, 0, origin)
		m.Periods = []*mpd.Period{period}
	} else {
		m.Periods, maxSeg = presProtectedPeriods(p, origin)
	}
	m.MaxSegmentDuration = durPtr(maxSeg)
	var buf bytes.Buffer
	if _, err := m.Write(&buf, "  ", true); err != nil {
		return nil, fmt.Errorf("write MPD: %w", err)
	}
	return buf.Bytes(), nil
}

// presPeriod describes renditions rs of p (each with the segments of the
// Period) as a Period named id, beginning at start, its media at pto on
// the epoch's timeline (@presentationTimeOffset). It also returns the
// longest segment.
func presPeriod(p *presentation, rs []*presRendition, id string, start, pto time.Duration) (*mpd.Period, time.Duration) {
	period := &mpd.Period{Id: id, Start: durPtr(start)}
	var video, audio *mpd.AdaptationSetType
	var maxSeg time.Duration
	for _, r := range rs {
		if len(r.segs) == 0 {
			continue
		}
		peak, _ := bandwidth(r.segs, r.timescale)
		rep := &mpd.RepresentationType{Id: r.id, Bandwidth: uint32(min(peak, 1<<32-1))}
		rep.Codecs = r.codec
		rep.SegmentTemplate = presTemplate(p.uris.mpdFiles, r, mediatime.Ticks(pto, r.timescale))
		for _, s := range r.segs {
			maxSeg = max(maxSeg, mediatime.Duration(s.duration, r.timescale))
		}
		if r.video {
			rep.Width, rep.Height = uint32(r.width), uint32(r.height)
			if r.fps > 0 {
				rep.FrameRate = frameRate(r.fps)
			}
			if video == nil {
				video = adaptationSet(uint32(len(period.AdaptationSets)), "video", typeMP4)
				period.AdaptationSets = append(period.AdaptationSets, video)
			}
			video.Representations = append(video.Representations, rep)
			continue
		}
		sr := mpd.UIntVectorType(strconv.Itoa(r.sample))
		rep.AudioSamplingRate = &sr
		rep.AudioChannelConfigurations = []*mpd.DescriptorType{
			mpd.NewDescriptor("urn:mpeg:dash:23003:3:audio_channel_configuration:2011", strconv.Itoa(r.channels), ""),
		}
		if audio == nil {
			audio = adaptationSet(uint32(len(period.AdaptationSets)), "audio", typeM4A)
			audio.Lang = "und"
			period.AdaptationSets = append(period.AdaptationSets, audio)
		}
		audio.Representations = append(audio.Representations, rep)
	}
	if video != nil {
		// ISO/IEC 23009-1 5.3.3.2: claimed only when it holds, as live.
		video.SegmentAlignment = presAligned(rs)
	}
	return period, maxSeg
}

// presTemplate describes r's segments, the files under dir, as
// segmentTemplate does the live ones: $Number$ with an explicit
// SegmentTimeline, runs of equal durations folded with @r, and an
// explicit @t where the media jumps. Segment numbers must follow each
// other ($Number$ counts the S entries); see vodRendition.
func presTemplate(dir string, r *presRendition, pto int64) *mpd.SegmentTemplateType {
	ts := r.timescale
	start := uint32(r.segs[0].number)
	tpl := &mpd.SegmentTemplateType{
		Initialization: dir + "$RepresentationID$/init.mp4",
		Media:          dir + "$RepresentationID$/$Number$.m4s",
	}
	tpl.Timescale = &ts
	tpl.StartNumber = &start
	if pto > 0 {
		u := uint64(pto)
		tpl.PresentationTimeOffset = &u
	}
	tl := &mpd.SegmentTimelineType{}
	var last *mpd.S
	var lastEnd int64 = -1
	for _, s := range r.segs {
		d := uint64(s.duration)
		if last != nil && last.D == d && s.start == lastEnd {
			last.R++
		} else {
			t := uint64(s.start)
			last = &mpd.S{T: &t, D: d}
			tl.S = append(tl.S, last)
		}
		lastEnd = s.end()
	}
	tpl.SegmentTimeline = tl
	return tpl
}

// presAligned reports whether no segment of one video rendition of rs
// overlaps a segment with another number of another (aligned, as the
// live MPD says it).
func presAligned(rs []*presRendition) bool {
	var videos [][]*entry
	for _, r := range rs {
		if !r.video {
			continue
		}
		es := make([]*entry, len(r.segs))
		for i, s := range r.segs {
			es[i] = &entry{seg: &packager.Segment{Number: s.number, Start: s.start, Duration: s.duration, Timescale: r.timescale}}
		}
		videos = append(videos, es)
	}
	for i := range videos {
		for j := i + 1; j < len(videos); j++ {
			if !pairAligned(videos[i], videos[j]) {
				return false
			}
		}
	}
	return true
}

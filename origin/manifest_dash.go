package origin

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// TimePath is where the origin serves its clock, named by the MPD's
// UTCTiming element.
const TimePath = "/time"

// mpdTimeFormat is how the MPD writes wall-clock times: xs:dateTime in
// UTC, to the millisecond, as the UTCTiming scheme http-iso does.
const mpdTimeFormat = "2006-01-02T15:04:05.000Z"

// buildMPD renders the stream's dynamic MPD (ISO/IEC 23009-1, DASH-IF live
// profile): one Period per instance of the presentation (cur, after the
// prior instances it continues, whose files are still served), one
// AdaptationSet per media type, SegmentTemplate with $Number$ and a
// SegmentTimeline per Representation, addressing the same files as the
// HLS playlists. Each AdaptationSet ties its media to the wall clock with
// a ProducerReferenceTime; while the stream is live, the live Period's
// segments are available as they are produced, chunk by chunk, and a
// ServiceDescription gives players a latency to hold (low-latency DASH,
// manifest_dash_ll.go). Of cfg it uses Window, SegmentDuration and
// ChunkDuration; now is the publishTime. It is a pure function of its
// arguments.
func buildMPD(cur view, prior []view, cfg Config, now time.Time) ([]byte, error) {
	dynamic := "dynamic"
	m := &mpd.MPD{
		XMLNs:                 "urn:mpeg:dash:schema:mpd:2011",
		Profiles:              mpd.ListOfProfilesType(mpd.PROFILE_LIVE),
		Type:                  &dynamic,
		AvailabilityStartTime: mpd.DateTime(cur.pres.UTC().Format(mpdTimeFormat)),
		PublishTime:           mpd.DateTime(now.UTC().Format(mpdTimeFormat)),
		MinBufferTime:         durPtr(2 * cfg.SegmentDuration),
		TimeShiftBufferDepth:  durPtr(cfg.Window),
		// A player that reads no ServiceDescription starts this far
		// behind the live edge: three segments.
		SuggestedPresentationDelay: durPtr(3 * cfg.SegmentDuration),
		// DASH-IF IOP 4.7: players synchronise their clock with ours.
		UTCTimings: []*mpd.DescriptorType{utcTiming()},
	}
	if cur.snap.ended {
		// ISO/IEC 23009-1 5.4: a dynamic MPD may become static. Players
		// then treat the window as on-demand content that ends at
		// mediaPresentationDuration, instead of waiting at the live edge
		// for segments that will never come.
		static := "static"
		m.Type = &static
		m.MediaPresentationDuration = durPtr(cur.start + cur.snap.end())
		m.TimeShiftBufferDepth, m.SuggestedPresentationDelay = nil, nil
	} else {
		m.MinimumUpdatePeriod = durPtr(cfg.SegmentDuration)
	}
	offset, chunked := chunkedAvailability(cfg)
	lowLatency := chunked && !cur.snap.ended

	var maxSeg time.Duration
	for _, p := range prior {
		// An earlier instance's Period stays while some of it is in the
		// time-shift buffer.
		if p.pres.Add(p.start + p.snap.end()).Before(now.Add(-cfg.Window)) {
			continue
		}
		// An encrypted instance is a Period per key period.
		periods, d := periodsOf(p)
		m.Periods = append(m.Periods, periods...)
		maxSeg = max(maxSeg, d)
	}
	if periods, d := periodsOf(cur); len(periods) > 0 {
		if lowLatency {
			live := periods[len(periods)-1]
			setAvailability(live, offset)
			open := openTimelines(live, cur, cfg.SegmentDuration)
			m.ServiceDescription = []*mpd.ServiceDescriptionType{serviceDescription(live.AdaptationSets[0].ProducerReferenceTimes[0].Id, open)}
		}
		m.Periods = append(m.Periods, periods...)
		maxSeg = max(maxSeg, d)
	}
	m.MaxSegmentDuration = durPtr(maxSeg)

	var buf bytes.Buffer
	if _, err := m.Write(&buf, "  ", true); err != nil {
		return nil, fmt.Errorf("write MPD: %w", err)
	}
	return buf.Bytes(), nil
}

// buildPeriod describes the instance v as a Period, named by its epoch,
// beginning where v's timeline zero falls in the presentation. It also
// returns the longest segment listed; a nil Period if nothing is.
func buildPeriod(v view) (*mpd.Period, time.Duration) {
	period := &mpd.Period{Id: v.epoch, Start: durPtr(v.start)}
	var maxSeg time.Duration
	var video, audio *mpd.AdaptationSetType
	var videos []*rendition
	// Stalled ladder renditions stay, unlike in the HLS multivariant
	// playlist: an MPD update may add segment references and Periods, or
	// remove expired ones, but not take a Representation out of a Period
	// (ISO/IEC 23009-1 5.4.1, DASH-IF IOP timing model, "MPD updates").
	for _, r := range v.snap.playable() {
		listed := r.listed()
		ms := measure(r)
		rep := &mpd.RepresentationType{
			Id:        r.id,
			Bandwidth: uint32(min(ms.peak, 1<<32-1)),
		}
		rep.Codecs = r.info.Codec
		rep.SegmentTemplate = segmentTemplate(v.epoch, r, listed)
		for _, e := range listed {
			maxSeg = max(maxSeg, mediatime.Duration(e.seg.Duration, e.seg.Timescale))
		}
		if r.info.Video {
			rep.Width, rep.Height = uint32(r.info.Width), uint32(r.info.Height)
			if ms.fps > 0 {
				rep.FrameRate = frameRate(ms.fps)
			}
			if video == nil {
				video = adaptationSet(uint32(len(period.AdaptationSets)), "video", typeMP4)
				period.AdaptationSets = append(period.AdaptationSets, video)
			}
			video.Representations = append(video.Representations, rep)
			videos = append(videos, r)
			continue
		}
		sr := mpd.UIntVectorType(strconv.Itoa(r.info.SampleRate))
		rep.AudioSamplingRate = &sr
		rep.AudioChannelConfigurations = []*mpd.DescriptorType{
			mpd.NewDescriptor("urn:mpeg:dash:23003:3:audio_channel_configuration:2011", strconv.Itoa(r.info.Channels), ""),
		}
		if audio == nil {
			audio = adaptationSet(uint32(len(period.AdaptationSets)), "audio", typeM4A)
			audio.Lang = "und"
			period.AdaptationSets = append(period.AdaptationSets, audio)
		}
		audio.Representations = append(audio.Representations, rep)
	}
	if len(period.AdaptationSets) == 0 {
		return nil, 0
	}
	for _, as := range period.AdaptationSets {
		as.ProducerReferenceTimes = []*mpd.ProducerReferenceTimeType{producerReferenceTime(v)}
	}
	if video != nil {
		video.SegmentAlignment = aligned(videos)
	}
	return period, maxSeg
}

func adaptationSet(id uint32, contentType, mimeType string) *mpd.AdaptationSetType {
	as := &mpd.AdaptationSetType{
		Id:               &id,
		ContentType:      mpd.RFC6838ContentTypeType(contentType),
		SegmentAlignment: true,
	}
	as.MimeType = mimeType
	as.StartWithSAP = 1
	return as
}

// aligned reports whether no segment of one rendition overlaps a segment
// with another number of another (ISO/IEC 23009-1 5.3.3.2,
// @segmentAlignment), as with the transcoded ladder. A source passthrough
// whose GOP is longer than the segment duration has longer segments, and
// is not aligned.
func aligned(rs []*rendition) bool {
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if !pairAligned(rs[i].listed(), rs[j].listed()) {
				return false
			}
		}
	}
	return true
}

// pairAligned walks two renditions' segments in time order, looking for
// overlapping segments with different numbers.
func pairAligned(a, b []*entry) bool {
	span := func(e *entry) (time.Duration, time.Duration) {
		return mediatime.Duration(e.seg.Start, e.seg.Timescale), mediatime.Duration(e.end(), e.seg.Timescale)
	}
	for len(a) > 0 && len(b) > 0 {
		as, ae := span(a[0])
		bs, be := span(b[0])
		if as < be && bs < ae && a[0].seg.Number != b[0].seg.Number {
			return false
		}
		if ae <= be {
			a = a[1:]
		} else {
			b = b[1:]
		}
	}
	return true
}

// segmentTemplate describes r's listed segments: $Number$ addressing (the
// same file names as HLS) with an explicit SegmentTimeline, runs of equal
// durations folded with @r. The files are those of instance epoch.
func segmentTemplate(epoch string, r *rendition, listed []*entry) *mpd.SegmentTemplateType {
	ts := r.info.Timescale
	start := uint32(listed[0].seg.Number)
	tpl := &mpd.SegmentTemplateType{
		Initialization: epoch + "/$RepresentationID$/init.mp4",
		Media:          epoch + "/$RepresentationID$/$Number$.m4s",
	}
	tpl.Timescale = &ts
	tpl.StartNumber = &start
	tl := &mpd.SegmentTimelineType{}
	var last *mpd.S
	var lastEnd int64 = -1
	for _, e := range listed {
		d := uint64(e.seg.Duration)
		if last != nil && last.D == d && e.seg.Start == lastEnd {
			last.R++
		} else {
			t := uint64(e.seg.Start)
			last = &mpd.S{T: &t, D: d}
			tl.S = append(tl.S, last)
		}
		lastEnd = e.end()
	}
	tpl.SegmentTimeline = tl
	return tpl
}

// frameRate renders fps as an MPD frameRate: an integer, or N/1001 for the
// NTSC rates, or a millihertz fraction.
func frameRate(fps float64) mpd.FrameRateType {
	if fps == float64(int(fps)) {
		return mpd.FrameRateType(strconv.Itoa(int(fps)))
	}
	for _, base := range []int{24, 30, 60} {
		if ntsc := float64(base*1000) / 1001; fps > ntsc-0.01 && fps < ntsc+0.01 {
			return mpd.FrameRateType(fmt.Sprintf("%d/1001", base*1000))
		}
	}
	return mpd.FrameRateType(fmt.Sprintf("%d/1000", int(fps*1000+0.5)))
}

func durPtr(d time.Duration) *mpd.Duration {
	v := mpd.Duration(d)
	return &v
}

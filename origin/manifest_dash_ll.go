package origin

// Low-latency DASH signalling in the MPD (DASH-IF IOP, "Low-latency Modes
// for DASH", chunked mode; ISO/IEC 23009-1:2022 5.3.9.2, 5.12 and Annex
// K). The media is what every player gets: 1-s segments of 250-ms CMAF
// chunks, a segment being produced streamed chunk by chunk to the
// requests held for it (partial.go). What these elements add is telling
// a player so, and how close to the live edge to play.

import (
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/golivestream/live/internal/mediatime"
)

// Service latency (ISO/IEC 23009-1 Annex K.3.2, MPD ServiceDescription
// Latency), between the wall-clock time a frame reached ingest and the
// time it is played, as the MPD timeline and the ProducerReferenceTime
// measure it.
const (
	// llTargetLatency is where players hold themselves while the
	// timelines are open (openTimelines). The freshest media a player
	// can have is a chunk (250 ms) behind ingest: the packager closes a
	// chunk when it holds a chunk's worth of frames, and a ladder rung
	// adds its transcoder's delay. A player told of the segment being
	// produced asks for it as its first chunk is made and reads its
	// chunks as they come: it needs a chunk of headroom, and as much
	// again for the PoP's transit, the chunk in flight and the
	// browser's media pipeline. Measured (bench/latency): dash.js holds
	// 1.0 s without stalling.
	llTargetLatency = 1000 * time.Millisecond
	// llMinLatency is the least a player should play at: under a chunk
	// and a half, it stalls on every chunk.
	llMinLatency = 750 * time.Millisecond
	// llClosedTargetLatency and llClosedMinLatency are where players hold
	// themselves when a timeline lists finished segments only (a source
	// whose GOP is not the segment duration, an encrypted stream, a
	// publisher gone): a player learns of a segment from the MPD update
	// after its end, so it needs a segment (1 s) of headroom more, plus
	// a chunk and the PoP's transit, rounded up: 1.5 s.
	llClosedTargetLatency = 1500 * time.Millisecond
	llClosedMinLatency    = 1000 * time.Millisecond
	// llMaxLatency is the most a player should tolerate before it jumps
	// back to the live edge instead of catching up (dash.js seeks when
	// it is half a second beyond this).
	llMaxLatency = 3000 * time.Millisecond
)

// Service playback rates (ISO/IEC 23009-1 Annex K.3.3): the bounds of
// the catch-up. Slower by 4% at most, which is hard to hear, when a
// player is closer than its target and its buffer thin; faster by up to
// 10% when behind it (browsers keep the pitch): a player starts about
// half a second behind its target (it takes its start position from the
// MPD, then waits for the media up to it, bench/latency), which at 4%
// took 12 s or more to make up, at 10% 5 s.
const (
	llMinPlaybackRate = 0.96
	llMaxPlaybackRate = 1.10
)

// chunkedAvailability reports the SegmentTemplate@availabilityTimeOffset of a live
// stream's segments (ISO/IEC 23009-1 5.3.9.2, with
// @availabilityTimeComplete false): a segment is available, its first
// chunk at least, one chunk after it begins, so the segment duration less
// a chunk before its end (DASH-IF IOP, low-latency chunked mode). ok is
// false when segments are not chunked (one chunk each, or chunk duration
// unset): then a segment is available only when complete.
func chunkedAvailability(cfg Config) (offset time.Duration, ok bool) {
	if cfg.ChunkDuration <= 0 || cfg.ChunkDuration >= cfg.SegmentDuration {
		return 0, false
	}
	return cfg.SegmentDuration - cfg.ChunkDuration, true
}

// setAvailability marks a live Period's segment templates as available
// offset before their end, while incomplete: the segments a player may
// request while they are produced. The earlier Periods of a
// presentation, whose instances no longer produce anything, keep complete
// segments.
func setAvailability(p *mpd.Period, offset time.Duration) {
	incomplete := false
	for _, as := range p.AdaptationSets {
		for _, rep := range as.Representations {
			tpl := rep.SegmentTemplate
			tpl.AvailabilityTimeOffset = mpd.FloatInf64(offset.Seconds())
			tpl.AvailabilityTimeComplete = &incomplete
		}
	}
}

// openTimelines ends the SegmentTimeline of each Representation of the
// live Period p of instance v whose rendition is producing segments of
// the nominal duration segment with an S element of that duration that
// repeats until the next MPD update (ISO/IEC 23009-1 5.3.9.6.3: @r
// negative), from the end of its last segment: the segment being
// produced is announced as it begins, not once it ends, so that a
// player asks for it as soon as its first chunk is available
// (availabilityTimeOffset) instead of at the next MPD update after its
// end (DASH-IF IOP, low-latency modes: SegmentTimeline; dash.js counts
// such segments up to the live edge of its clock). The next MPD update
// gives the segment its exact duration: an audio segment ends at the
// first AAC frame at or after its second, up to a frame (21 ms) off.
//
// Only renditions whose segments are that long, each of their last two
// within a tenth of it: the transcoded ladder, whose keyframes we force
// every segment duration, audio, and a source whose GOP is the segment
// duration. A source with a longer GOP would have its later segments
// announced at the wrong times and numbers, and asked for too early.
// Nor while the publisher is gone (nothing is produced), nor for an
// encrypted instance, whose next segment may begin a key period, and so
// a Period, of its own (protect_manifest.go).
//
// It reports whether every Representation's timeline is open: only then
// may players hold themselves as close as llTargetLatency.
func openTimelines(p *mpd.Period, v view, segment time.Duration) (all bool) {
	if v.keys != nil || !producing(v.snap) {
		return false
	}
	all = true
	for _, as := range p.AdaptationSets {
		for _, rep := range as.Representations {
			r := v.snap.rendition(rep.Id)
			if r == nil || r.partial == nil {
				all = false
				continue
			}
			listed := r.listed()
			nominal := mediatime.Ticks(segment, r.info.Timescale)
			if len(listed) < 2 || !regular(listed[len(listed)-2:], nominal) {
				all = false
				continue
			}
			t := uint64(listed[len(listed)-1].end())
			tl := rep.SegmentTemplate.SegmentTimeline
			tl.S = append(tl.S, &mpd.S{T: &t, D: uint64(nominal), R: -1})
		}
	}
	return all
}

// producing reports whether a publisher feeds the instance of sn: its
// source renditions have a segment in production.
func producing(sn *snapshot) bool {
	for _, r := range sn.renditions {
		if !r.ladder && r.partial == nil {
			return false
		}
	}
	return len(sn.renditions) > 0
}

// regular reports whether each of es lasts nominal ticks, within a tenth.
func regular(es []*entry, nominal int64) bool {
	for _, e := range es {
		if d := e.seg.Duration - nominal; d > nominal/10 || d < -nominal/10 {
			return false
		}
	}
	return true
}

// serviceDescription is the MPD's ServiceDescription for a live
// low-latency stream (ISO/IEC 23009-1 Annex K.4; DASH-IF IOP, low-latency
// modes: Latency and PlaybackRate present). Its Latency refers to the
// ProducerReferenceTime prt of the live Period, whose wall clock it is
// measured on. open says whether every timeline of the live Period is
// open (openTimelines), which lets players hold themselves closer.
func serviceDescription(prt uint32, open bool) *mpd.ServiceDescriptionType {
	ms := func(d time.Duration) *uint32 { v := uint32(d.Milliseconds()); return &v }
	target, least := llClosedTargetLatency, llClosedMinLatency
	if open {
		target, least = llTargetLatency, llMinLatency
	}
	return &mpd.ServiceDescriptionType{
		Latencies: []*mpd.LatencyType{{
			ReferenceId: prt,
			Target:      ms(target),
			Min:         ms(least),
			Max:         ms(llMaxLatency),
		}},
		PlaybackRates: []*mpd.PlaybackRateType{{Min: llMinPlaybackRate, Max: llMaxPlaybackRate}},
	}
}

// prtID is the ProducerReferenceTime@id of instance v's Period: its
// Period@start in milliseconds, which no other Period of the presentation
// shares and which stays the same in every MPD update, so that the
// ServiceDescription's Latency@referenceId names the live Period's (a
// player applies the one it names, else the first it finds, which may
// be an earlier Period's). Modulo 2^32, the width of the attribute: two
// Periods in one MPD are never 49 days apart to the millisecond.
func prtID(v view) uint32 { return uint32(v.start.Milliseconds()) }

// producerReferenceTime ties instance v's media timeline to the wall
// clock (ISO/IEC 23009-1 5.12): its timeline zero, presentation time 0
// in every Representation (presentationTimeOffset is 0), is v.ast, the
// wall-clock time ingest dates it at. It is the mapping of the HLS
// media playlists' EXT-X-PROGRAM-DATE-TIME (mediaPlaylist), so that a
// frame has one wall-clock time in both. The type is "encoder": the
// clock is the one of ingest, where the encoder's output arrives, not
// of capture. Its UTCTiming is the MPD's: the clock players synchronise
// with (DASH-IF IOP, low-latency modes).
//
// The MPD timeline puts the same frame at pres + start + t, later than
// ast + t where the instance continues media that ran ahead of the wall
// clock (instance.start); a player holding its latency on the
// ProducerReferenceTime plays that much closer to the MPD's live edge.
func producerReferenceTime(v view) *mpd.ProducerReferenceTimeType {
	return &mpd.ProducerReferenceTimeType{
		Id:               prtID(v),
		Type:             "encoder",
		WallClockTime:    v.ast.UTC().Format(mpdTimeFormat),
		PresentationTime: 0,
		UTCTiming:        utcTiming(),
	}
}

// utcTiming is the clock the MPD's times are on (DASH-IF IOP 4.7: players
// synchronise their clock with it): our TimePath, ISO 8601 over HTTP.
func utcTiming() *mpd.DescriptorType {
	return mpd.NewDescriptor("urn:mpeg:dash:utc:http-iso:2014", TimePath, "")
}

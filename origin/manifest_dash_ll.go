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
)

// Service latency (ISO/IEC 23009-1 Annex K.3.2, MPD ServiceDescription
// Latency), between the wall-clock time a frame reached ingest and the
// time it is played, as the MPD timeline and the ProducerReferenceTime
// measure it.
const (
	// llTargetLatency is where players hold themselves. The freshest
	// media a player can have is a chunk (250 ms) behind ingest: the
	// packager closes a chunk when it holds a chunk's worth of frames.
	// On top of that, a player needs about a segment (1 s) of headroom:
	// its next request opens at a segment boundary, and, with the
	// SegmentTimeline listing finished segments, it learns of the next
	// segment when the MPD update that lists it arrives. A chunk plus a
	// segment, plus the PoP's transit, rounded up: 1.5 s.
	llTargetLatency = 1500 * time.Millisecond
	// llMinLatency is the least a player should play at: a chunk and a
	// half-second buffer under it, it stalls on every request.
	llMinLatency = 1000 * time.Millisecond
	// llMaxLatency is the most a player should tolerate before it jumps
	// back to the live edge instead of catching up (dash.js seeks when
	// it is half a second beyond this).
	llMaxLatency = 3000 * time.Millisecond
)

// Service playback rates (ISO/IEC 23009-1 Annex K.3.3): the bounds of
// the catch-up, 4% either way, which dash.js's default catch-up uses and
// which is hard to hear on speech and music. At 4%, a player 0.5 s off
// its target is back on it in about 12 s.
const (
	llMinPlaybackRate = 0.96
	llMaxPlaybackRate = 1.04
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

// serviceDescription is the MPD's ServiceDescription for a live
// low-latency stream (ISO/IEC 23009-1 Annex K.4; DASH-IF IOP, low-latency
// modes: Latency and PlaybackRate present). Its Latency refers to the
// ProducerReferenceTime prt of the live Period, whose wall clock it is
// measured on.
func serviceDescription(prt uint32) *mpd.ServiceDescriptionType {
	ms := func(d time.Duration) *uint32 { v := uint32(d.Milliseconds()); return &v }
	return &mpd.ServiceDescriptionType{
		Latencies: []*mpd.LatencyType{{
			ReferenceId: prt,
			Target:      ms(llTargetLatency),
			Min:         ms(llMinLatency),
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

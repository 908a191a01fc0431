package origin

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mediatime"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/packager"
)

// hlsVersion is the EXT-X-VERSION of our playlists: 7 for EXT-X-MAP in
// playlists without I-frames only (RFC 8216bis section 8).
const hlsVersion = 7

// stats are a rendition's figures measured over its listed segments.
type stats struct {
	peak, average int     // bits per second
	fps           float64 // video only
	segments      int
}

// measure computes r's stats from what was packaged, over its listed
// segments.
func measure(r *rendition) stats { return measureEntries(r.listed(), r.info) }

// measureRecent computes r's stats over its last few segments: what ingest
// brings now.
func measureRecent(r *rendition) stats {
	listed := r.listed()
	return measureEntries(listed[max(len(listed)-3, 0):], r.info)
}

func measureEntries(entries []*entry, info packager.Info) stats {
	var st stats
	var bytes, ticks int64
	var rates []float64
	for _, e := range entries {
		st.segments++
		bytes += int64(len(e.seg.Data))
		ticks += e.seg.Duration
		if e.seg.Duration > 0 {
			secs := float64(e.seg.Duration) / float64(e.seg.Timescale)
			st.peak = max(st.peak, int(math.Ceil(float64(len(e.seg.Data))*8/secs)))
			rates = append(rates, float64(e.seg.Samples)/secs)
		}
	}
	if ticks > 0 {
		secs := float64(ticks) / float64(info.Timescale)
		st.average = int(math.Ceil(float64(bytes) * 8 / secs))
	}
	if info.Video && len(rates) > 0 {
		// The median segment, so that one segment stretched by a gap in
		// the source does not skew the rate.
		slices.Sort(rates)
		st.fps = snapRate(rates[len(rates)/2])
	}
	return st
}

// standardRates are the frame rates players expect to see exactly.
var standardRates = []float64{24000.0 / 1001, 24, 25, 30000.0 / 1001, 30, 50, 60000.0 / 1001, 60}

// snapRate rounds a measured frame rate to the nearest standard one within
// 0.05% (29.97 and 30 are 0.1% apart), else to 1/1000.
func snapRate(fps float64) float64 {
	best, bestDiff := fps, math.Inf(1)
	for _, r := range standardRates {
		if d := math.Abs(fps - r); d <= r*0.0005 && d < bestDiff {
			best, bestDiff = r, d
		}
	}
	return math.Round(best*1000) / 1000
}

// segmentPath is the URI of segment n relative to the rendition directory.
func segmentPath(n uint64) string { return strconv.FormatUint(n, 10) + ".m4s" }

// mediaPlaylist renders the media playlist of r, a rendition of instance
// in whose snapshot is sn: ended when sn is; with the LL-HLS tags while
// live (playlist_ll.go); as a delta update when skip. It is a pure
// function of its arguments.
func mediaPlaylist(in *instance, r *rendition, sn *snapshot, skip bool) []byte {
	listed := r.listed()
	pl := playlist.Media{
		Version:             hlsVersion,
		IndependentSegments: true,
		TargetDuration:      r.targetDuration,
		MediaSequence:       int(listed[0].seg.Number),
		Map:                 &playlist.MediaMap{URI: "init.mp4"},
		Endlist:             sn.ended,
	}
	if r.discSeq > 0 || hasDisc(listed) {
		ds := r.discSeq
		pl.DiscontinuitySequence = &ds
	}
	for _, e := range listed {
		// RFC 8216bis 4.4.4.6: EXT-X-PROGRAM-DATE-TIME maps the segment's
		// first sample to the wall clock; ours is the availability start
		// time plus its position on the stream timeline.
		pdt := in.ast.Add(mediatime.Duration(e.seg.Start, e.seg.Timescale)).UTC()
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{
			Duration:      mediatime.Duration(e.seg.Duration, e.seg.Timescale),
			URI:           segmentPath(e.seg.Number),
			Discontinuity: e.disc,
			DateTime:      &pdt,
			Key:           in.keys.hlsKey(e.seg.Start, e.seg.Timescale), // nil: clear
		})
	}
	if !sn.ended {
		lowLatency(&pl, r, sn, listed, skip)
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Media cannot fail
	return in.keys.protectHLS(b, r, listed)
}

func hasDisc(es []*entry) bool {
	for _, e := range es {
		if e.disc {
			return true
		}
	}
	return false
}

// multivariantPlaylist renders the stream's multivariant playlist: one
// variant per video rendition, audio in an EXT-X-MEDIA group (RFC 8216bis
// 4.4.6.1), or a single audio-only variant. Stalled ladder renditions are
// left out so that new players do not pick them; players already on one
// do not reload this playlist, but its media playlist answers 404 and they
// switch to another variant. The source is never stalled, so a stream
// with video always keeps a video variant. It is a pure function of the
// instance in and its snapshot snap.
func multivariantPlaylist(in *instance, snap *snapshot) []byte {
	pl := playlist.Multivariant{Version: hlsVersion, IndependentSegments: true}
	renditions := snap.playable()
	var audio *rendition
	for _, r := range renditions {
		if !r.info.Video {
			audio = r
			break
		}
	}
	var audioStats stats
	if audio != nil {
		audioStats = measure(audio)
		channels := strconv.Itoa(max(audio.info.Channels, 1))
		uri := in.epoch + "/" + audio.id + "/index.m3u8"
		pl.Renditions = append(pl.Renditions, &playlist.MultivariantRendition{
			Type:       playlist.MultivariantRenditionTypeAudio,
			GroupID:    "audio",
			Name:       audio.id,
			Default:    true,
			Autoselect: true,
			Channels:   &channels,
			URI:        &uri,
		})
	}
	for _, r := range renditions {
		if !r.info.Video || r.stalled > 0 {
			continue
		}
		vs := measure(r)
		avg := vs.average + audioStats.average
		v := &playlist.MultivariantVariant{
			Bandwidth:        vs.peak + audioStats.peak,
			AverageBandwidth: &avg,
			Codecs:           []string{r.info.Codec},
			Resolution:       strconv.Itoa(r.info.Width) + "x" + strconv.Itoa(r.info.Height),
			URI:              in.epoch + "/" + r.id + "/index.m3u8",
		}
		if vs.fps > 0 {
			fps := vs.fps
			v.FrameRate = &fps
		}
		if audio != nil {
			v.Codecs = append(v.Codecs, audio.info.Codec)
			v.Audio = "audio"
		}
		pl.Variants = append(pl.Variants, v)
	}
	startFirst(pl.Variants)
	if len(pl.Variants) == 0 && audio != nil {
		avg := audioStats.average
		pl.Renditions = nil
		pl.Variants = append(pl.Variants, &playlist.MultivariantVariant{
			Bandwidth:        audioStats.peak,
			AverageBandwidth: &avg,
			Codecs:           []string{audio.info.Codec},
			URI:              in.epoch + "/" + audio.id + "/index.m3u8",
		})
	}
	b, _ := pl.Marshal() // Marshal of a filled-in Multivariant cannot fail
	return b
}

// startBandwidth bounds the average bit rate of the variant listed first.
// Safari and AVPlayer start playback with the first variant of the
// multivariant playlist; a source of 6 Mb/s listed first would make every
// viewer on a modest network stall before adapting down.
const startBandwidth = 3_000_000

// startFirst moves to the front the variant to start with: the richest one
// whose average bit rate is at most startBandwidth, or the leanest if none
// is. The others keep their order.
func startFirst(vs []*playlist.MultivariantVariant) {
	if len(vs) < 2 {
		return
	}
	avg := func(v *playlist.MultivariantVariant) int { return *v.AverageBandwidth }
	start, lowest := -1, 0
	for i, v := range vs {
		if avg(v) <= startBandwidth && (start < 0 || avg(v) > avg(vs[start])) {
			start = i
		}
		if avg(v) < avg(vs[lowest]) {
			lowest = i
		}
	}
	if start < 0 {
		start = lowest
	}
	v := vs[start]
	copy(vs[1:start+1], vs[:start])
	vs[0] = v
}

// TTLDirective is our Cache-Control extension giving a lifetime in
// milliseconds (layout.TTLDirective).
const TTLDirective = layout.TTLDirective

// manifestCacheControl is the Cache-Control of playlists and MPDs: a
// lifetime of half a segment, in milliseconds for our PoPs, rounded to
// whole seconds (at least one) for everyone else.
func manifestCacheControl(segment time.Duration) string {
	secs := max(1, int(math.Round(segment.Seconds()/2)))
	return "public, max-age=" + strconv.Itoa(secs) + ", " + TTLDirective + "=" + strconv.FormatInt((segment/2).Milliseconds(), 10)
}

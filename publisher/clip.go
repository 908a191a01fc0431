package publisher

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// maxClipSeconds bounds every timestamp LoadClip accepts, so that tick
// arithmetic cannot overflow whatever the file claims.
const maxClipSeconds = 24 * 60 * 60

// Clip is a media file held in memory, ready to publish: its tracks and its
// samples in decode order. It is safe for concurrent readers once loaded;
// nobody may modify it then.
type Clip struct {
	// Tracks are the codecs as gortmplib describes them: *codecs.H264 with
	// SPS and PPS, and/or *codecs.MPEG4Audio with its Config, in file order.
	Tracks []*gortmplib.Track
	// Samples holds all tracks interleaved, sorted by DTS (ties keep track
	// order). The first DTS is zero.
	Samples []ClipSample
	// Duration is the clip's length, used as the loop offset: the longest
	// track span from its first DTS to the end of its last sample. For the
	// track that starts at zero this is last DTS + last sample duration; a
	// track that starts later (AAC after its priming delay) is measured from
	// its own start. Either way every track's DTS keeps increasing from one
	// loop to the next, with the smallest gap that allows.
	Duration time.Duration
}

// ClipSample is one access unit of a Clip.
type ClipSample struct {
	Track    int // index into Clip.Tracks
	PTS, DTS time.Duration
	NALUs    [][]byte // video: NAL units (no length prefix)
	AU       []byte   // audio: raw AAC frame
	Key      bool     // video keyframe (the access unit holds an IDR slice)
}

// clipTrack is one track of the file while LoadClip reads it.
type clipTrack struct {
	id        uint32
	timescale uint32
	video     bool
	track     *gortmplib.Track
	shift     int64 // edit list offset added to every media time, in ticks
	samples   []rawSample
}

// rawSample locates one sample in the file; times are in track ticks.
type rawSample struct {
	dts, cto, dur int64
	offset, size  uint64
}

// LoadClip parses an FLV file, or a progressive or fragmented MP4 file,
// holding H.264 and/or AAC tracks. Tracks that are neither video nor audio are skipped; any other
// video or audio codec is an error naming it. The first edit of each track's
// edit list is applied, then all timestamps are shifted so that the first
// DTS is zero. The sample data is copied: data may be reused afterwards.
//
// data is untrusted: LoadClip returns an error, never panics, on a
// malformed file, and its allocations grow with len(data), not with the
// counts the file claims.
func LoadClip(data []byte) (*Clip, error) {
	if isFLV(data) {
		return loadFLV(data)
	}
	f, err := decodeMP4(data)
	if err != nil {
		return nil, fmt.Errorf("decode mp4: %w", err)
	}
	if f.Moov == nil || f.Moov.Mvhd == nil {
		return nil, errors.New("decode mp4: no moov box")
	}
	budget := len(data) // samples left to read: each takes at least a byte
	var tracks []*clipTrack
	for _, trak := range f.Moov.Traks {
		t, err := newClipTrack(f.Moov, trak)
		if err != nil {
			return nil, err
		}
		if t == nil {
			continue
		}
		if err := t.readSampleTable(trak.Mdia.Minf.Stbl, &budget); err != nil {
			return nil, fmt.Errorf("track %d: %w", t.id, err)
		}
		if err := t.readFragments(f, &budget); err != nil {
			return nil, fmt.Errorf("track %d: %w", t.id, err)
		}
		tracks = append(tracks, t)
	}
	if len(tracks) == 0 {
		return nil, errors.New("no video or audio track")
	}
	return buildClip(data, tracks)
}

// decodeMP4 parses the box tree. Lazy mode leaves mdat payloads in data,
// where LoadClip reads them. mp4ff has a decoder for each of hundreds of box
// types: a panic in one, fed untrusted bytes, is turned into an error here
// (fuzzing has found none so far).
func decodeMP4(data []byte) (f *mp4.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("mp4ff panicked: %v", p)
		}
	}()
	return mp4.DecodeFile(bytes.NewReader(data), mp4.WithDecodeMode(mp4.DecModeLazyMdat))
}

// newClipTrack describes trak, or returns nil if it is neither video nor
// audio.
func newClipTrack(moov *mp4.MoovBox, trak *mp4.TrakBox) (*clipTrack, error) {
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil {
		return nil, errors.New("track without tkhd or hdlr")
	}
	t := &clipTrack{id: trak.Tkhd.TrackID}
	switch trak.Mdia.Hdlr.HandlerType {
	case "vide":
		t.video = true
	case "soun":
	default:
		return nil, nil
	}
	mdia := trak.Mdia
	if mdia.Mdhd == nil || mdia.Minf == nil || mdia.Minf.Stbl == nil || mdia.Minf.Stbl.Stsd == nil {
		return nil, fmt.Errorf("track %d: incomplete media description", t.id)
	}
	t.timescale = mdia.Mdhd.Timescale
	if t.timescale == 0 {
		return nil, fmt.Errorf("track %d: zero timescale", t.id)
	}
	var err error
	if t.track, err = trackCodec(mdia.Minf.Stbl.Stsd, t.video); err != nil {
		return nil, fmt.Errorf("track %d: %w", t.id, err)
	}
	if t.shift, err = editShift(moov.Mvhd.Timescale, trak.Edts, t.timescale); err != nil {
		return nil, fmt.Errorf("track %d: %w", t.id, err)
	}
	return t, nil
}

// trackCodec reads the first sample entry of stsd (ISO/IEC 14496-15 5.4.2
// for avc1/avc3, ISO/IEC 14496-14 5.6 for mp4a).
func trackCodec(stsd *mp4.StsdBox, video bool) (*gortmplib.Track, error) {
	if len(stsd.Children) == 0 {
		return nil, errors.New("no sample description")
	}
	entry := stsd.Children[0]
	name := entry.Type()
	switch e := entry.(type) {
	case *mp4.VisualSampleEntryBox:
		if !video || (name != "avc1" && name != "avc3") || e.AvcC == nil {
			break
		}
		if len(e.AvcC.SPSnalus) == 0 || len(e.AvcC.PPSnalus) == 0 {
			return nil, fmt.Errorf("%s without SPS and PPS in avcC (in-band parameter sets are not supported)", name)
		}
		sps, pps := e.AvcC.SPSnalus[0], e.AvcC.PPSnalus[0]
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			return nil, fmt.Errorf("invalid SPS: %w", err)
		}
		if len(pps) == 0 {
			return nil, errors.New("empty PPS")
		}
		return &gortmplib.Track{Codec: &codecs.H264{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}}, nil
	case *mp4.AudioSampleEntryBox:
		if video || name != "mp4a" || e.Esds == nil || e.Esds.DecConfigDescriptor == nil {
			break
		}
		dcd := e.Esds.DecConfigDescriptor
		// ISO/IEC 14496-1 Table 5: 0x40 is MPEG-4 Audio (AAC); 0x66-0x68
		// are MPEG-2 AAC profiles, carried with the same config.
		if ot := dcd.ObjectType; ot != 0x40 && (ot < 0x66 || ot > 0x68) {
			return nil, fmt.Errorf("unsupported codec %s with object type 0x%02x (only AAC)", name, ot)
		}
		if dcd.DecSpecificInfo == nil {
			return nil, errors.New("mp4a without AudioSpecificConfig")
		}
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(dcd.DecSpecificInfo.DecConfig); err != nil {
			return nil, fmt.Errorf("invalid AudioSpecificConfig: %w", err)
		}
		return &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &asc}}, nil
	}
	return nil, fmt.Errorf("unsupported codec %q (only H.264 video and AAC audio)", name)
}

// editShift returns the offset that an edit list (ISO/IEC 14496-12 8.6.6)
// adds to media times: leading empty edits delay the track, and the first
// normal edit starts presentation at its media_time. Later edits are
// ignored: no sample is dropped.
func editShift(movieTimescale uint32, edts *mp4.EdtsBox, timescale uint32) (int64, error) {
	if edts == nil || len(edts.Elst) == 0 || movieTimescale == 0 {
		return 0, nil
	}
	var delay uint64 // in movie ticks
	for _, e := range edts.Elst[0].Entries {
		if e.MediaTime == -1 {
			delay += min(e.SegmentDuration, maxClipSeconds*uint64(movieTimescale))
			if delay > maxClipSeconds*uint64(movieTimescale) {
				return 0, errors.New("edit list delay too long")
			}
			continue
		}
		if e.MediaTime < 0 || e.MediaTime > maxTicks(timescale) {
			return 0, fmt.Errorf("edit list media time %d out of range", e.MediaTime)
		}
		d := mediatime.Ticks(mediatime.Duration(int64(delay), movieTimescale), timescale)
		return d - e.MediaTime, nil
	}
	return 0, nil
}

// buildClip copies the samples out of data, splits video into NAL units,
// shifts timestamps so that the first DTS is zero and sorts by DTS.
func buildClip(data []byte, tracks []*clipTrack) (*Clip, error) {
	total, count := uint64(0), 0
	for _, t := range tracks {
		if len(t.samples) == 0 {
			return nil, fmt.Errorf("track %d has no samples", t.id)
		}
		for i, s := range t.samples {
			if s.size == 0 || s.offset > uint64(len(data)) || s.size > uint64(len(data))-s.offset {
				return nil, fmt.Errorf("track %d sample %d: %d bytes at %d lie outside the %d-byte file",
					t.id, i, s.size, s.offset, len(data))
			}
			total += s.size
			if total > uint64(len(data)) {
				return nil, fmt.Errorf("track %d: samples overlap", t.id)
			}
		}
		count += len(t.samples)
	}

	payloads := make([]byte, 0, total)
	c := &Clip{Samples: make([]ClipSample, 0, count)}
	for ti, t := range tracks {
		c.Tracks = append(c.Tracks, t.track)
		for i, s := range t.samples {
			start := len(payloads)
			payloads = append(payloads, data[s.offset:s.offset+s.size]...)
			payload := payloads[start:len(payloads):len(payloads)]
			cs := ClipSample{
				Track: ti,
				DTS:   mediatime.Duration(s.dts+t.shift, t.timescale),
				PTS:   mediatime.Duration(s.dts+s.cto+t.shift, t.timescale),
			}
			if t.video {
				var au h264.AVCC
				if err := au.Unmarshal(payload); err != nil {
					return nil, fmt.Errorf("track %d sample %d: %w", t.id, i, err)
				}
				cs.NALUs, cs.Key = au, h264.IsRandomAccess(au)
			} else {
				cs.AU = payload
			}
			c.Samples = append(c.Samples, cs)
		}
		first, last := t.samples[0], t.samples[len(t.samples)-1]
		dur := last.dur
		if dur <= 0 && len(t.samples) > 1 {
			dur = last.dts - t.samples[len(t.samples)-2].dts // repeat the previous spacing
		}
		c.Duration = max(c.Duration, mediatime.Duration(last.dts+max(dur, 1)-first.dts, t.timescale))
	}

	// Stable: samples were appended track by track, so ties keep track order.
	slices.SortStableFunc(c.Samples, func(a, b ClipSample) int { return cmp.Compare(a.DTS, b.DTS) })
	zero := c.Samples[0].DTS
	for i := range c.Samples {
		c.Samples[i].DTS -= zero
		c.Samples[i].PTS -= zero
	}
	return c, nil
}

// maxTicks is the largest timestamp accepted for a track, in its ticks.
func maxTicks(timescale uint32) int64 {
	return maxClipSeconds * int64(timescale)
}

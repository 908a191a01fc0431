package ingest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

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

// LoadClip parses a progressive or fragmented MP4 file holding H.264 and/or
// AAC tracks. Tracks that are neither video nor audio are skipped; any other
// video or audio codec is an error naming it. The first edit of each track's
// edit list is applied, then all timestamps are shifted so that the first
// DTS is zero. The sample data is copied: data may be reused afterwards.
//
// data is untrusted: LoadClip returns an error, never panics, on a
// malformed file, and allocates at most a small multiple of len(data).
func LoadClip(data []byte) (*Clip, error) {
	// Lazy mode leaves mdat payloads in data, where LoadClip reads them.
	f, err := mp4.DecodeFile(bytes.NewReader(data), mp4.WithDecodeMode(mp4.DecModeLazyMdat))
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
		d, ok := scale(delay, uint64(timescale), uint64(movieTimescale))
		if !ok {
			return 0, errors.New("edit list delay out of range")
		}
		return int64(d) - e.MediaTime, nil
	}
	return 0, nil
}

// readSampleTable appends the samples described by a progressive sample
// table (ISO/IEC 14496-12 8.6.1.2 stts, 8.6.1.3 ctts, 8.7.3 stsz, 8.7.4
// stsc, 8.7.5 stco/co64). An empty table (fragmented file) adds nothing.
func (t *clipTrack) readSampleTable(stbl *mp4.StblBox, budget *int) error {
	if stbl.Stsz == nil || stbl.Stsz.SampleNumber == 0 {
		return nil
	}
	n := int(stbl.Stsz.SampleNumber)
	if n > *budget {
		return fmt.Errorf("%d samples in a %d-byte file", n, *budget)
	}
	*budget -= n
	if stbl.Stts == nil || stbl.Stsc == nil || len(stbl.Stsc.Entries) == 0 {
		return errors.New("incomplete sample table")
	}
	var chunks []uint64
	switch {
	case stbl.Stco != nil:
		for _, o := range stbl.Stco.ChunkOffset {
			chunks = append(chunks, uint64(o))
		}
	case stbl.Co64 != nil:
		chunks = stbl.Co64.ChunkOffset
	default:
		return errors.New("no chunk offsets")
	}

	samples := make([]rawSample, 0, n)
	stsc := stbl.Stsc.Entries
	entry := 0
	for chunk := 1; chunk <= len(chunks) && len(samples) < n; chunk++ {
		for entry+1 < len(stsc) && int64(stsc[entry+1].FirstChunk) <= int64(chunk) {
			entry++
		}
		offset := chunks[chunk-1]
		for j := uint32(0); j < stsc[entry].SamplesPerChunk && len(samples) < n; j++ {
			size := uint64(stbl.Stsz.GetSampleSize(len(samples) + 1))
			samples = append(samples, rawSample{offset: offset, size: size})
			offset += size
		}
	}
	if len(samples) < n {
		return fmt.Errorf("chunks hold %d of %d samples", len(samples), n)
	}

	i, dts := 0, int64(0)
	for run, count := range stbl.Stts.SampleCount {
		delta := int64(stbl.Stts.SampleTimeDelta[run])
		for k := uint32(0); k < count && i < n; k++ {
			samples[i].dts, samples[i].dur = dts, delta
			if dts += delta; dts > maxTicks(t.timescale) {
				return errors.New("timestamps out of range")
			}
			i++
		}
	}
	if i < n {
		return fmt.Errorf("stts times %d of %d samples", i, n)
	}
	if ctts := stbl.Ctts; ctts != nil {
		for run, offset := range ctts.SampleOffset {
			if run+1 >= len(ctts.EndSampleNr) {
				break
			}
			start, end := int(min(ctts.EndSampleNr[run], uint32(n))), int(min(ctts.EndSampleNr[run+1], uint32(n)))
			for k := start; k < end; k++ {
				samples[k].cto = int64(offset)
			}
		}
	}
	t.samples = append(t.samples, samples...)
	return nil
}

// readFragments appends the track's samples from the movie fragments
// (ISO/IEC 14496-12 8.8.7 tfhd, 8.8.8 trun, 8.8.12 tfdt).
func (t *clipTrack) readFragments(f *mp4.File, budget *int) error {
	var trex *mp4.TrexBox
	if f.Moov.Mvex != nil {
		for _, x := range f.Moov.Mvex.Trexs {
			if x.TrackID == t.id {
				trex = x
			}
		}
	}
	var next int64 // decode time following the last sample read
	if k := len(t.samples); k > 0 {
		next = t.samples[k-1].dts + t.samples[k-1].dur
	}
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			if frag.Moof == nil {
				continue
			}
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd == nil || traf.Tfhd.TrackID != t.id {
					continue
				}
				dts := next
				if traf.Tfdt != nil {
					base := traf.Tfdt.BaseMediaDecodeTime()
					if base > uint64(maxTicks(t.timescale)) {
						return errors.New("tfdt out of range")
					}
					dts = int64(base)
				}
				// 8.8.7.1: without base_data_offset, data offsets are
				// relative to the enclosing moof.
				base := frag.Moof.StartPos
				if traf.Tfhd.HasBaseDataOffset() {
					base = traf.Tfhd.BaseDataOffset
				}
				pos := base
				for _, trun := range traf.Truns {
					trun.AddSampleDefaultValues(traf.Tfhd, trex)
					if trun.HasDataOffset() {
						p := int64(base) + int64(trun.DataOffset)
						if base > 1<<62 || p < 0 {
							return errors.New("trun data offset out of range")
						}
						pos = uint64(p)
					}
					if len(trun.Samples) > *budget {
						return errors.New("more samples than bytes in the file")
					}
					*budget -= len(trun.Samples)
					for _, s := range trun.Samples {
						if pos > 1<<62 {
							return errors.New("sample offset out of range")
						}
						t.samples = append(t.samples, rawSample{
							dts: dts, cto: int64(s.CompositionTimeOffset), dur: int64(s.Dur),
							offset: pos, size: uint64(s.Size),
						})
						pos += uint64(s.Size)
						if dts += int64(s.Dur); dts > maxTicks(t.timescale) {
							return errors.New("timestamps out of range")
						}
					}
				}
				next = dts
			}
		}
	}
	return nil
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
				DTS:   ticksToDuration(s.dts+t.shift, t.timescale),
				PTS:   ticksToDuration(s.dts+s.cto+t.shift, t.timescale),
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
		c.Duration = max(c.Duration, ticksToDuration(last.dts+max(dur, 1)-first.dts, t.timescale))
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

// ticksToDuration converts a media time to a Duration without overflow for
// any |ticks| up to maxTicks(timescale), rounding toward zero.
func ticksToDuration(ticks int64, timescale uint32) time.Duration {
	neg := ticks < 0
	if neg {
		ticks = -ticks
	}
	d, _ := scale(uint64(ticks), uint64(time.Second), uint64(timescale))
	if neg {
		return -time.Duration(d)
	}
	return time.Duration(d)
}

// scale returns v*num/den rounded down, and false if den is zero or the
// result does not fit in 63 bits.
func scale(v, num, den uint64) (uint64, bool) {
	if den == 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(v, num)
	if hi >= den {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, den)
	return q, q <= 1<<63-1
}

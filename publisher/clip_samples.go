package publisher

import (
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

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

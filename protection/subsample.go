package protection

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrSliceHeader is returned (wrapped) by Encrypt when a video sample holds
// a slice whose header cannot be parsed with the parameter sets of the init
// segment, or NAL unit lengths that overrun the sample. Such a sample is
// not encrypted: leaving a slice in the clear would leak it, encrypting its
// header would make the stream undecodable.
var ErrSliceHeader = errors.New("cannot locate slice header")

// naluLengthSize is the size of the length field before each NAL unit in a
// sample: the packager writes 4 (ISO/IEC 14496-15 5.3.2), as mp4ff's
// parsers require.
const naluLengthSize = 4

// maxClearRun is the largest BytesOfClearData of one subsample entry
// (an unsigned 16-bit field, ISO/IEC 23001-7 7.2.2).
const maxClearRun = 1<<16 - 1

// minProtected is the smallest protected range worth declaring: in cbcs a
// partial block at the end of a range stays clear (ISO/IEC 23001-7 10.4.2),
// so a range shorter than one block would protect nothing.
const minProtected = 16

// sliceMapper computes the subsample map of a video sample. It is immutable
// and safe for concurrent use.
type sliceMapper struct {
	hevc bool
	// Parameter sets of the init segment, by id.
	avcSPS  map[uint32]*avc.SPS
	avcPPS  map[uint32]*avc.PPS
	hevcSPS map[uint32]*hevc.SPS
	hevcPPS map[uint32]*hevc.PPS
}

// newAVCMapper parses the parameter sets of an avcC.
func newAVCMapper(spss, ppss [][]byte) (*sliceMapper, error) {
	m := &sliceMapper{avcSPS: map[uint32]*avc.SPS{}, avcPPS: map[uint32]*avc.PPS{}}
	for _, b := range spss {
		sps, err := avc.ParseSPSNALUnit(b, false)
		if err != nil {
			return nil, fmt.Errorf("parse SPS: %w", err)
		}
		m.avcSPS[sps.ParameterID] = sps
	}
	for _, b := range ppss {
		pps, err := avc.ParsePPSNALUnit(b, m.avcSPS)
		if err != nil {
			return nil, fmt.Errorf("parse PPS: %w", err)
		}
		m.avcPPS[pps.PicParameterSetID] = pps
	}
	if len(m.avcPPS) == 0 {
		return nil, errors.New("no PPS in avcC")
	}
	return m, nil
}

// newHEVCMapper parses the parameter sets of an hvcC.
func newHEVCMapper(arrays []hevc.NaluArray) (*sliceMapper, error) {
	m := &sliceMapper{hevc: true, hevcSPS: map[uint32]*hevc.SPS{}, hevcPPS: map[uint32]*hevc.PPS{}}
	for _, a := range arrays {
		if a.NaluType() != hevc.NALU_SPS {
			continue
		}
		for _, b := range a.Nalus {
			sps, err := hevc.ParseSPSNALUnit(b)
			if err != nil {
				return nil, fmt.Errorf("parse SPS: %w", err)
			}
			m.hevcSPS[uint32(sps.SpsID)] = sps
		}
	}
	for _, a := range arrays {
		if a.NaluType() != hevc.NALU_PPS {
			continue
		}
		for _, b := range a.Nalus {
			pps, err := hevc.ParsePPSNALUnit(b, m.hevcSPS)
			if err != nil {
				return nil, fmt.Errorf("parse PPS: %w", err)
			}
			m.hevcPPS[pps.PicParameterSetID] = pps
		}
	}
	if len(m.hevcPPS) == 0 {
		return nil, errors.New("no PPS in hvcC")
	}
	return m, nil
}

// subsamples appends to ssp the subsample map of sample, a sequence of
// 4-byte length-prefixed NAL units.
//
// ISO/IEC 23001-7 10.4.2 and ISO/IEC 23000-19 (CMAF) 8.2.2.1 for 'cbcs' NAL
// structured video: the clear part of each video slice NAL unit covers its
// length field, its NAL unit header and its slice header, and the protected
// part starts at the first byte of slice data following the slice header;
// it runs to the end of the NAL unit, and the partial block at its end stays
// clear. Other NAL units (parameter sets, SEI, ...) are entirely clear.
// Unlike 'cenc', the protected part is not trimmed to whole blocks: the
// pattern starts at the first byte after the slice header.
//
// The map is computed from the sample alone (with the init segment's
// parameter sets), so every chunk is encrypted the same way wherever and
// whenever it is encrypted.
func (m *sliceMapper) subsamples(ssp []mp4.SubSamplePattern, sample []byte) (_ []mp4.SubSamplePattern, err error) {
	defer func() {
		// The slice header parsers read publisher-supplied bytes: a panic
		// in them is a malformed sample, not a crash of the origin.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parser panicked: %v", ErrSliceHeader, p)
		}
	}()
	clear := 0 // clear bytes not yet in an entry
	for pos := 0; pos < len(sample); {
		if len(sample)-pos < naluLengthSize {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrSliceHeader, len(sample)-pos)
		}
		n := int(binary.BigEndian.Uint32(sample[pos:]))
		pos += naluLengthSize
		if n > len(sample)-pos || n == 0 {
			return nil, fmt.Errorf("%w: NAL unit length %d at %d overruns the %d-byte sample",
				ErrSliceHeader, n, pos-naluLengthSize, len(sample))
		}
		nalu := sample[pos : pos+n]
		pos += n
		hdr, err := m.sliceHeaderSize(nalu)
		if err != nil {
			return nil, err
		}
		if hdr == 0 || n-hdr < minProtected {
			clear += naluLengthSize + n
			continue
		}
		clear += naluLengthSize + hdr
		for clear > maxClearRun {
			ssp = append(ssp, mp4.SubSamplePattern{BytesOfClearData: maxClearRun})
			clear -= maxClearRun
		}
		ssp = append(ssp, mp4.SubSamplePattern{BytesOfClearData: uint16(clear), BytesOfProtectedData: uint32(n - hdr)})
		clear = 0
	}
	for clear > maxClearRun {
		ssp = append(ssp, mp4.SubSamplePattern{BytesOfClearData: maxClearRun})
		clear -= maxClearRun
	}
	if clear > 0 || len(ssp) == 0 {
		// Every video sample has at least one entry, so that all samples
		// of a fragment carry subsample information (senc flag 2).
		ssp = append(ssp, mp4.SubSamplePattern{BytesOfClearData: uint16(clear)})
	}
	return ssp, nil
}

// sliceHeaderSize returns the size of the NAL unit header and slice header
// of nalu, in bytes of the NAL unit as stored (emulation prevention bytes
// included, the last, partly used byte included), or 0 when nalu is not a
// coded slice to encrypt.
func (m *sliceMapper) sliceHeaderSize(nalu []byte) (int, error) {
	if m.hevc {
		// ITU-T H.265 Table 7-1: VCL NAL unit types 0-9 and 16-21 are
		// coded slice segments; the others are reserved.
		typ := hevc.GetNaluType(nalu[0])
		if len(nalu) < 2 || !(typ <= 9 || (typ >= 16 && typ <= 21)) {
			return 0, nil
		}
		sh, err := hevc.ParseSliceHeader(nalu, m.hevcSPS, m.hevcPPS)
		if err != nil {
			return 0, fmt.Errorf("%w: H.265 NAL unit type %d: %w", ErrSliceHeader, typ, err)
		}
		return checkHeader(int(sh.Size), len(nalu))
	}
	// ITU-T H.264 Table 7-1: types 1 and 5 are coded slices; partitions
	// (2-4) are left clear.
	typ := avc.GetNaluType(nalu[0])
	if typ != avc.NALU_NON_IDR && typ != avc.NALU_IDR {
		return 0, nil
	}
	sh, err := avc.ParseSliceHeader(nalu, m.avcSPS, m.avcPPS)
	if err != nil {
		return 0, fmt.Errorf("%w: H.264 NAL unit type %d: %w", ErrSliceHeader, typ, err)
	}
	return checkHeader(int(sh.Size), len(nalu))
}

// checkHeader bounds a parsed header size by the NAL unit: a header that
// reaches its end (slice data inside the header's last byte, or bytes the
// parser ran out of) leaves nothing to protect, and the NAL unit stays
// clear.
func checkHeader(size, n int) (int, error) {
	if size <= 0 {
		return 0, fmt.Errorf("%w: slice header of %d bytes", ErrSliceHeader, size)
	}
	return min(size, n), nil
}

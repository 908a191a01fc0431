package packager

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/golivestream/live/internal/mediatime"
)

// NAL unit types (ITU-T H.264 Table 7-1, ITU-T H.265 Table 7-1) that the
// packager looks at.
const (
	h264NALUNonIDR = 1
	h264NALUIDR    = 5
	h264NALUAUD    = 9
	h264NALUFiller = 12

	h265NALUVCLMax   = 31
	h265NALUIRAPMin  = 16 // BLA_W_LP
	h265NALUIRAPMax  = 23 // RSV_IRAP_VCL23
	h265NALUAUD      = 35
	h265NALUFiller   = 38
	naluLengthPrefix = 4 // bytes of the length field before every NAL unit in mdat
)

// WriteVideo adds one video access unit: H.264 or H.265 NAL units without
// start codes or length prefixes. pts and dts are on the stream timeline
// (normally >= 0).
//
// The access unit is stored as 4-byte length-prefixed NAL units, without
// access unit delimiters and filler data. An access unit without any VCL NAL
// unit (only parameter sets or SEI) is not a sample and is skipped. Access
// units before the first keyframe, and with a negative dts before that, are
// dropped. A dts not greater than the previous one is moved to the previous
// one plus one tick, so decode order stays strictly monotonic.
//
// A sample is written once the next one arrives (its duration is the
// difference of their dts), so OnChunk and OnSegment, when called, deliver
// earlier samples.
func (t *Track) WriteVideo(pts, dts time.Duration, au [][]byte) error {
	if t.closed {
		return ErrClosed
	}
	if !t.info.Video {
		return fmt.Errorf("write video: %w", ErrWrongMedia)
	}
	size, vcl, sync := t.scanVideo(au)
	if !vcl {
		return nil
	}
	if size > maxChunkPayload {
		return fmt.Errorf("write video: access unit of %d bytes is too large", size)
	}

	d := mediatime.Ticks(dts, VideoTimescale)
	if !t.started {
		if d < 0 || !sync {
			return nil
		}
		t.started = true
	} else if t.hasPend && d <= t.pendDTS {
		d = t.pendDTS + 1
	}
	cto := clampInt32(mediatime.Ticks(pts, VideoTimescale) - d)

	if t.hasPend {
		dur := d - t.pendDTS
		discontinuity := dur > math.MaxUint32
		if discontinuity {
			// A jump the trun cannot express: keep the previous duration
			// and start a new chunk at the new decode time.
			dur = t.fallbackDuration()
		}
		t.finishSample(dur)
		// Cut at the first keyframe at or after the boundary, with a
		// tolerance so that keyframes slightly early still cut.
		cut := sync && d >= t.nextBoundary-t.tolTicks
		if cut || discontinuity || t.chunkFull(int(size)) {
			t.closeChunk()
		}
		if cut {
			t.closeSegment()
		}
	}
	if !t.segOpen {
		t.openSegment(d)
	}
	if !t.chunkOpen {
		t.openChunk(d, sync)
	}
	t.appendVideo(au)
	t.addSample(uint32(size), sync, cto)
	t.hasPend = true
	t.pendDTS = d
	return nil
}

// scanVideo returns the size the access unit takes in mdat, whether it has a
// VCL NAL unit and whether it is a keyframe (H.264 IDR, H.265 IRAP).
func (t *Track) scanVideo(au [][]byte) (size int64, vcl, sync bool) {
	for _, nalu := range au {
		if !t.keepNALU(nalu) {
			continue
		}
		size += naluLengthPrefix + int64(len(nalu))
		if t.kind == kindH264 {
			typ := nalu[0] & 0x1f
			if typ >= h264NALUNonIDR && typ <= h264NALUIDR {
				vcl = true
				sync = sync || typ == h264NALUIDR
			}
			continue
		}
		typ := (nalu[0] >> 1) & 0x3f
		if typ <= h265NALUVCLMax {
			vcl = true
			sync = sync || (typ >= h265NALUIRAPMin && typ <= h265NALUIRAPMax)
		}
	}
	return size, vcl, sync
}

// keepNALU reports whether nalu goes into the sample: empty NAL units, access
// unit delimiters and filler data do not.
func (t *Track) keepNALU(nalu []byte) bool {
	if len(nalu) == 0 {
		return false
	}
	if t.kind == kindH264 {
		typ := nalu[0] & 0x1f
		return typ != h264NALUAUD && typ != h264NALUFiller
	}
	typ := (nalu[0] >> 1) & 0x3f
	return typ != h265NALUAUD && typ != h265NALUFiller
}

// appendVideo appends the kept NAL units of au to the mdat of the chunk in
// progress, each preceded by its 4-byte length (ISO/IEC 14496-15 5.3.2).
func (t *Track) appendVideo(au [][]byte) {
	for _, nalu := range au {
		if !t.keepNALU(nalu) {
			continue
		}
		t.mdat = binary.BigEndian.AppendUint32(t.mdat, uint32(len(nalu)))
		t.mdat = append(t.mdat, nalu...)
	}
}

// clampInt32 returns v limited to the int32 range.
func clampInt32(v int64) int32 {
	switch {
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return int32(v)
}

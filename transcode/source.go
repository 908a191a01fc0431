package transcode

import (
	"fmt"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// source is what the transcoder needs to know of a stream's video.
type source struct {
	h265          bool
	width, height int
	fps           float64 // from the SPS timing info; 0 when absent
	// params are the parameter sets (VPS,) SPS and PPS, sent in-band
	// before every keyframe that lacks them: ffmpeg reads an elementary
	// stream, not the publisher's RTMP sequence header.
	params [][]byte
}

// probeSource reads the source video's parameter sets.
func probeSource(c codecs.Codec) (source, error) {
	switch c := c.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return source{}, fmt.Errorf("h264 SPS: %w", err)
		}
		return source{width: sps.Width(), height: sps.Height(), fps: sps.FPS(), params: [][]byte{c.SPS, c.PPS}}, nil
	case *codecs.H265:
		var sps h265.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return source{}, fmt.Errorf("h265 SPS: %w", err)
		}
		return source{h265: true, width: sps.Width(), height: sps.Height(), fps: sps.FPS(), params: [][]byte{c.VPS, c.SPS, c.PPS}}, nil
	default:
		return source{}, fmt.Errorf("video codec %T cannot be transcoded", c)
	}
}

// isKey reports whether au starts a coded video sequence.
func (s source) isKey(au [][]byte) bool {
	if s.h265 {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}

// withParams copies au into one buffer, with the parameter sets first when
// it is a keyframe without them.
func (s source) withParams(au [][]byte, key bool) [][]byte {
	withPS := key && !s.hasParams(au)
	n, size := len(au), 0
	if withPS {
		n += len(s.params)
		for _, p := range s.params {
			size += len(p)
		}
	}
	for _, nalu := range au {
		size += len(nalu)
	}
	buf := make([]byte, 0, size)
	out := make([][]byte, 0, n)
	add := func(nalu []byte) {
		buf = append(buf, nalu...)
		out = append(out, buf[len(buf)-len(nalu):len(buf):len(buf)])
	}
	if withPS {
		for _, p := range s.params {
			add(p)
		}
	}
	for _, nalu := range au {
		add(nalu)
	}
	return out
}

// hasParams reports whether au carries an SPS.
func (s source) hasParams(au [][]byte) bool {
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		if s.h265 && h265.NALUType((nalu[0]>>1)&0x3f) == h265.NALUType_SPS_NUT {
			return true
		}
		if !s.h265 && h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
	}
	return false
}

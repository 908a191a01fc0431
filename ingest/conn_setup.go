package ingest

import (
	"bytes"
	"fmt"

	"github.com/bluenviron/gohlslib/v2/pkg/codecparams"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// videoSetup follows the parameter sets of a publisher's video track
// against those its session was published with (they are in its init
// segment). Encoders send new ones in two ways: in-band, in the access
// unit of a keyframe, or in an RTMP sequence header, which reaches us as
// an access unit of parameter sets only.
//
//   - When the new sets change what players are told, the codec string or
//     the picture size (an encoder restarted at another resolution, a relay
//     switching sources), the track needs a new init segment: check
//     returns the new codec and the stream is published anew.
//   - Otherwise (another PPS, other VUI) the decoder only has to see the
//     new sets. In-band ones go into the sample as they are; those of a
//     sequence header, which is not a sample, are carried into the next
//     keyframe.
type videoSetup struct {
	cur     codecs.Codec // the session's: *codecs.H264 or *codecs.H265
	pending [][]byte     // a sequence header's sets, for the next keyframe
}

// check looks at one access unit. It returns the codec to publish anew
// with, or nil, and the access unit to write (nil for none).
func (v *videoSetup) check(au [][]byte) (changed codecs.Codec, out [][]byte) {
	next, vcl, sync := v.scan(au)
	if next == nil {
		if v.pending != nil && sync {
			out = append(append(make([][]byte, 0, len(v.pending)+len(au)), v.pending...), au...)
			v.pending = nil
			return nil, out
		}
		return nil, au
	}
	if sameSets(next, v.cur) {
		v.pending = nil // back to the session's sets
		return nil, au
	}
	next = cloneSets(next) // au's bytes are the reader's
	if d := describe(next); d != "" && d != describe(v.cur) {
		v.cur, v.pending = next, nil
		if !vcl {
			au = nil
		}
		return next, au
	}
	if !vcl {
		v.pending = paramSets(next)
		return nil, nil
	}
	return nil, au
}

// scan returns the parameter sets au carries, completed with the
// session's (nil when it carries none), and whether it has a VCL NAL unit
// and a keyframe.
func (v *videoSetup) scan(au [][]byte) (next codecs.Codec, vcl, sync bool) {
	switch cur := v.cur.(type) {
	case *codecs.H264:
		var sps, pps []byte
		for _, nalu := range au {
			if len(nalu) == 0 {
				continue
			}
			switch typ := nalu[0] & 0x1f; {
			case typ == 7:
				sps = nalu
			case typ == 8:
				pps = nalu
			case typ >= 1 && typ <= 5:
				vcl = true
				sync = sync || typ == 5
			}
		}
		if sps != nil || pps != nil {
			next = &codecs.H264{SPS: or(sps, cur.SPS), PPS: or(pps, cur.PPS)}
		}
	case *codecs.H265:
		var vps, sps, pps []byte
		for _, nalu := range au {
			if len(nalu) == 0 {
				continue
			}
			switch typ := (nalu[0] >> 1) & 0x3f; {
			case typ == 32:
				vps = nalu
			case typ == 33:
				sps = nalu
			case typ == 34:
				pps = nalu
			case typ <= 31:
				vcl = true
				sync = sync || (typ >= 16 && typ <= 23)
			}
		}
		if vps != nil || sps != nil || pps != nil {
			next = &codecs.H265{VPS: or(vps, cur.VPS), SPS: or(sps, cur.SPS), PPS: or(pps, cur.PPS)}
		}
	}
	return next, vcl, sync
}

// describe returns what players are told of a video codec: its RFC 6381
// string and picture size; "" when its SPS does not parse, which is not
// taken for a new setup (the sets go on in-band, as the publisher sent
// them).
func describe(c codecs.Codec) string {
	var w, h int
	switch c := c.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if sps.Unmarshal(c.SPS) != nil {
			return ""
		}
		w, h = sps.Width(), sps.Height()
	case *codecs.H265:
		var sps h265.SPS
		if sps.Unmarshal(c.SPS) != nil {
			return ""
		}
		w, h = sps.Width(), sps.Height()
	}
	return fmt.Sprintf("%s %dx%d", codecparams.Marshal(c), w, h)
}

func sameSets(a, b codecs.Codec) bool {
	pa, pb := paramSets(a), paramSets(b)
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if !bytes.Equal(pa[i], pb[i]) {
			return false
		}
	}
	return true
}

// paramSets returns a video codec's parameter sets in decoding order.
func paramSets(c codecs.Codec) [][]byte {
	switch c := c.(type) {
	case *codecs.H264:
		return [][]byte{c.SPS, c.PPS}
	case *codecs.H265:
		return [][]byte{c.VPS, c.SPS, c.PPS}
	}
	return nil
}

// cloneSets returns a video codec with copies of its parameter sets.
func cloneSets(c codecs.Codec) codecs.Codec {
	switch c := c.(type) {
	case *codecs.H264:
		return &codecs.H264{SPS: bytes.Clone(c.SPS), PPS: bytes.Clone(c.PPS)}
	case *codecs.H265:
		return &codecs.H265{VPS: bytes.Clone(c.VPS), SPS: bytes.Clone(c.SPS), PPS: bytes.Clone(c.PPS)}
	}
	return c
}

func or(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

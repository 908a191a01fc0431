package publisher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// FLV tag types and codec ids (Adobe Flash Video File Format Specification
// 10.1, annex E).
const (
	flvTagAudio  = 8
	flvTagVideo  = 9
	flvTagScript = 18
	flvCodecAVC  = 7
	flvSoundAAC  = 10
	flvTimescale = 1000 // FLV timestamps are milliseconds
)

// isFLV reports whether data starts like an FLV file.
func isFLV(data []byte) bool { return bytes.HasPrefix(data, []byte("FLV")) }

// loadFLV reads an FLV file holding H.264 and/or AAC, as ffmpeg and
// encoders record what they publish over RTMP: the same payloads, in tags.
// data is untrusted, as for LoadClip.
func loadFLV(data []byte) (*Clip, error) {
	if len(data) < 9 || data[3] != 1 {
		return nil, errors.New("flv: bad header")
	}
	off := int(binary.BigEndian.Uint32(data[5:9]))
	if off < 9 || off > len(data) {
		return nil, fmt.Errorf("flv: header size %d", off)
	}
	video := &clipTrack{id: 1, timescale: flvTimescale, video: true}
	audio := &clipTrack{id: 2, timescale: flvTimescale}
	off += 4 // PreviousTagSize0
	for n := 0; off < len(data); n++ {
		if len(data)-off < 11 {
			return nil, fmt.Errorf("flv tag %d: truncated header", n)
		}
		h := data[off : off+11]
		size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		ts := int64(h[4])<<16 | int64(h[5])<<8 | int64(h[6]) | int64(h[7])<<24
		body := off + 11
		if size > len(data)-body {
			return nil, fmt.Errorf("flv tag %d: %d bytes past the end of the file", n, size)
		}
		if ts > maxTicks(flvTimescale) {
			return nil, fmt.Errorf("flv tag %d: timestamp %d ms out of range", n, ts)
		}
		var err error
		switch h[0] & 0x1f {
		case flvTagVideo:
			err = video.flvVideo(data, body, size, ts)
		case flvTagAudio:
			err = audio.flvAudio(data, body, size, ts)
		case flvTagScript:
		default:
			err = fmt.Errorf("unknown tag type %d", h[0]&0x1f)
		}
		if err != nil {
			return nil, fmt.Errorf("flv tag %d: %w", n, err)
		}
		off = body + size + 4 // and PreviousTagSize
	}
	var tracks []*clipTrack
	for _, t := range []*clipTrack{video, audio} {
		if len(t.samples) > 0 {
			if t.track == nil {
				return nil, fmt.Errorf("flv: track %d has samples but no sequence header", t.id)
			}
			t.setDurations()
			tracks = append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return nil, errors.New("flv: no video or audio samples")
	}
	return buildClip(data, tracks)
}

// flvVideo reads a video tag: an AVC sequence header or NAL units.
func (t *clipTrack) flvVideo(data []byte, off, size int, ts int64) error {
	if size < 5 {
		return fmt.Errorf("video tag of %d bytes", size)
	}
	b := data[off : off+size]
	if codec := b[0] & 0x0f; codec != flvCodecAVC || b[0]&0x80 != 0 {
		return fmt.Errorf("unsupported video codec id %d (only H.264)", codec)
	}
	cto := int64(int32(uint32(b[2])<<24|uint32(b[3])<<16|uint32(b[4])<<8) >> 8)
	switch b[1] {
	case 0: // AVCDecoderConfigurationRecord
		rec, err := avc.DecodeAVCDecConfRec(b[5:])
		if err != nil {
			return fmt.Errorf("AVC sequence header: %w", err)
		}
		if len(rec.SPSnalus) == 0 || len(rec.PPSnalus) == 0 {
			return errors.New("AVC sequence header without SPS and PPS")
		}
		var sps h264.SPS
		if err := sps.Unmarshal(rec.SPSnalus[0]); err != nil {
			return fmt.Errorf("invalid SPS: %w", err)
		}
		if len(b) > 9 && b[9]&3 != 3 {
			return fmt.Errorf("NAL unit length of %d bytes (only 4)", b[9]&3+1)
		}
		c := &codecs.H264{SPS: bytes.Clone(rec.SPSnalus[0]), PPS: bytes.Clone(rec.PPSnalus[0])}
		if t.track != nil && !t.sameH264(c) {
			return errors.New("the AVC sequence header changes mid-file")
		}
		t.track = &gortmplib.Track{Codec: c}
	case 1:
		if size > 5 {
			t.samples = append(t.samples, rawSample{dts: ts, cto: cto, offset: uint64(off + 5), size: uint64(size - 5)})
		}
	}
	return nil
}

// sameH264 reports whether t's codec is c.
func (t *clipTrack) sameH264(c *codecs.H264) bool {
	old, ok := t.track.Codec.(*codecs.H264)
	return ok && bytes.Equal(old.SPS, c.SPS) && bytes.Equal(old.PPS, c.PPS)
}

// flvAudio reads an audio tag: an AAC AudioSpecificConfig or a raw frame.
func (t *clipTrack) flvAudio(data []byte, off, size int, ts int64) error {
	if size < 2 {
		return fmt.Errorf("audio tag of %d bytes", size)
	}
	b := data[off : off+size]
	if format := b[0] >> 4; format != flvSoundAAC {
		return fmt.Errorf("unsupported sound format %d (only AAC)", format)
	}
	switch b[1] {
	case 0:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(b[2:]); err != nil {
			return fmt.Errorf("invalid AudioSpecificConfig: %w", err)
		}
		if t.track == nil {
			t.track = &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &asc}}
		}
	case 1:
		if size > 2 {
			t.samples = append(t.samples, rawSample{dts: ts, offset: uint64(off + 2), size: uint64(size - 2)})
		}
	}
	return nil
}

// setDurations gives each sample the time to the next one; the last one
// keeps its predecessor's.
func (t *clipTrack) setDurations() {
	for i := range t.samples {
		if i+1 < len(t.samples) {
			t.samples[i].dur = t.samples[i+1].dts - t.samples[i].dts
		} else if i > 0 {
			t.samples[i].dur = t.samples[i-1].dur
		}
	}
}

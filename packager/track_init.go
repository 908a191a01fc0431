package packager

import (
	"errors"
	"fmt"
	"math"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/codecparams"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// trackID is the track_ID of the single track of every init segment.
const trackID = 1

// setup fills kind, info, init and the trun layout from codec.
func (t *Track) setup(codec codecs.Codec) error {
	is := newInitSegment()
	var err error
	switch c := codec.(type) {
	case *codecs.H264:
		t.kind = kindH264
		err = t.setupH264(is, c)
	case *codecs.H265:
		t.kind = kindH265
		err = t.setupH265(is, c)
	case *codecs.MPEG4Audio:
		t.kind = kindAAC
		err = t.setupAAC(is, c)
	default:
		return fmt.Errorf("%w: %T", ErrUnsupportedCodec, codec)
	}
	if err != nil {
		return err
	}

	if t.info.Video {
		// ISO/IEC 14496-12 8.8.8: duration, size, flags and a signed
		// (version 1) composition time offset for every sample.
		t.trunFlags = mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag |
			mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag |
			mp4.TrunSampleCompositionTimeOffsetPresentFlag
		t.sampleBytes = 16
	} else {
		// Audio has no composition offsets.
		t.trunFlags = mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag |
			mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag
		t.sampleBytes = 12
	}

	sw := bits.NewFixedSliceWriter(int(is.Size()))
	if err := is.EncodeSW(sw); err != nil {
		return fmt.Errorf("encode init segment: %w", err)
	}
	t.init = sw.Bytes()
	return nil
}

// newInitSegment returns ftyp + moov(mvhd, mvex) for a single-track CMAF
// header (ISO/IEC 23000-19 7.3.1): no mehd, since the duration of a live
// stream is unknown.
func newInitSegment() *mp4.InitSegment {
	is := mp4.NewMP4Init()
	is.AddChild(mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc", "dash"}))
	moov := mp4.NewMoovBox()
	is.AddChild(moov)
	moov.AddChild(mp4.CreateMvhd())
	moov.AddChild(mp4.NewMvexBox())
	return is
}

// addTrak adds the single trak (and its trex) to is.
func addTrak(is *mp4.InitSegment, timescale uint32, mediaType string) *mp4.TrakBox {
	is.Moov.Mvhd.Timescale = timescale
	return is.AddEmptyTrack(timescale, mediaType, "und")
}

// setupH264 adds an avc1 sample entry built from the SPS and PPS.
func (t *Track) setupH264(is *mp4.InitSegment, c *codecs.H264) error {
	if len(c.SPS) == 0 || len(c.PPS) == 0 {
		return errors.New("h264: missing SPS or PPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS); err != nil {
		return fmt.Errorf("h264: parse SPS: %w", err)
	}
	w, h := sps.Width(), sps.Height()
	if err := checkSize(w, h); err != nil {
		return fmt.Errorf("h264: %w", err)
	}

	// ISO/IEC 14496-15 5.3.3.1.2: AVCDecoderConfigurationRecord. The
	// chroma/bit-depth fields exist only for the profiles that code them in
	// the SPS; for the others 4:2:0 8-bit is implied.
	rec := avc.DecConfRec{
		AVCProfileIndication: c.SPS[1],
		ProfileCompatibility: c.SPS[2],
		AVCLevelIndication:   c.SPS[3],
		SPSnalus:             [][]byte{cloneBytes(c.SPS)},
		PPSnalus:             [][]byte{cloneBytes(c.PPS)},
		ChromaFormat:         1,
	}
	switch sps.ProfileIdc {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		rec.ChromaFormat = byte(sps.ChromaFormatIdc & 3)
		rec.BitDepthLumaMinus1 = byte(sps.BitDepthLumaMinus8 & 7)
		rec.BitDepthChromaMinus1 = byte(sps.BitDepthChromaMinus8 & 7)
	}

	t.addVideoTrak(is, c, "avc1", w, h, &mp4.AvcCBox{DecConfRec: rec})
	return nil
}

// addVideoTrak adds the video trak with its sample entry and sets t.info.
func (t *Track) addVideoTrak(is *mp4.InitSegment, c codecs.Codec, entry string, w, h int, config mp4.Box) {
	trak := addTrak(is, VideoTimescale, "video")
	setTkhdSize(trak, w, h)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateVisualSampleEntryBox(entry, uint16(w), uint16(h), config))
	t.info = Info{
		Codec:     codecparams.Marshal(c),
		Video:     true,
		Width:     w,
		Height:    h,
		Timescale: VideoTimescale,
	}
}

// setupH265 adds an hvc1 sample entry built from the VPS, SPS and PPS.
func (t *Track) setupH265(is *mp4.InitSegment, c *codecs.H265) error {
	if len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
		return errors.New("h265: missing VPS, SPS or PPS")
	}
	var sps h265.SPS
	if err := sps.Unmarshal(c.SPS); err != nil {
		return fmt.Errorf("h265: parse SPS: %w", err)
	}
	w, h := sps.Width(), sps.Height()
	if err := checkSize(w, h); err != nil {
		return fmt.Errorf("h265: %w", err)
	}

	// ISO/IEC 14496-15 8.4.1.1: hvc1 carries complete parameter set arrays.
	hvcC, err := mp4.CreateHvcC([][]byte{cloneBytes(c.VPS)}, [][]byte{cloneBytes(c.SPS)}, [][]byte{cloneBytes(c.PPS)},
		true, true, true, true)
	if err != nil {
		return fmt.Errorf("h265: build hvcC: %w", err)
	}

	t.addVideoTrak(is, c, "hvc1", w, h, hvcC)
	return nil
}

// setupAAC adds an mp4a sample entry whose esds carries the actual
// AudioSpecificConfig.
func (t *Track) setupAAC(is *mp4.InitSegment, c *codecs.MPEG4Audio) error {
	conf := c.Config
	if conf.SampleRate <= 0 || conf.SampleRate > math.MaxUint32 {
		return fmt.Errorf("aac: invalid sample rate %d", conf.SampleRate)
	}
	asc, err := conf.Marshal()
	if err != nil {
		return fmt.Errorf("aac: marshal AudioSpecificConfig: %w", err)
	}
	channels := aacChannels(conf)

	rate := uint32(conf.SampleRate)
	trak := addTrak(is, rate, "audio")
	// ISO/IEC 14496-12 12.2.3: samplerate is 16.16 fixed point; rates that
	// do not fit are left to the decoder configuration.
	entryRate := uint16(0)
	if rate <= math.MaxUint16 {
		entryRate = uint16(rate)
	}
	trak.Mdia.Minf.Stbl.Stsd.AddChild(
		mp4.CreateAudioSampleEntryBox("mp4a", uint16(channels), 16, entryRate, mp4.CreateEsdsBox(asc)))

	// The output rate of HE-AAC is the SBR rate; the timescale stays the
	// core rate, at which every frame lasts 1024 ticks.
	outRate := conf.SampleRate
	if conf.ExtensionSampleRate > 0 &&
		(conf.ExtensionType == mpeg4audio.ObjectTypeSBR || conf.ExtensionType == mpeg4audio.ObjectTypePS) {
		outRate = conf.ExtensionSampleRate
	}
	t.info = Info{
		Codec:      aacCodecString(c),
		SampleRate: outRate,
		Channels:   channels,
		Timescale:  rate,
	}
	return nil
}

// aacChannels returns the number of output channels described by conf.
// Channel configuration 0 (layout in a PCE) is reported as 2, and parametric
// stereo as 2.
func aacChannels(conf mpeg4audio.AudioSpecificConfig) int {
	n := conf.ChannelCount
	switch {
	case conf.ChannelConfig >= 1 && conf.ChannelConfig <= 6:
		n = int(conf.ChannelConfig)
	case conf.ChannelConfig == 7:
		n = 8
	}
	if n <= 0 {
		n = 2
	}
	if conf.ExtensionType == mpeg4audio.ObjectTypePS && n == 1 {
		n = 2
	}
	return n
}

// aacCodecString returns the RFC 6381 string of an AAC track. gohlslib reports
// the core object type ("mp4a.40.2") also for explicitly signalled HE-AAC;
// players need "mp4a.40.5" / "mp4a.40.29" to pick the right decoder output
// rate and channel layout, so the extension type wins when present.
func aacCodecString(c *codecs.MPEG4Audio) string {
	switch c.Config.ExtensionType {
	case mpeg4audio.ObjectTypeSBR, mpeg4audio.ObjectTypePS:
		return fmt.Sprintf("mp4a.40.%d", c.Config.ExtensionType)
	}
	return codecparams.Marshal(c)
}

// checkSize rejects picture sizes that cannot be written to a sample entry.
func checkSize(w, h int) error {
	if w <= 0 || h <= 0 || w > math.MaxUint16 || h > math.MaxUint16 {
		return fmt.Errorf("invalid picture size %dx%d", w, h)
	}
	return nil
}

// setTkhdSize sets the presentation size of trak (16.16 fixed point).
func setTkhdSize(trak *mp4.TrakBox, w, h int) {
	trak.Tkhd.Width = mp4.Fixed32(uint32(w) << 16)
	trak.Tkhd.Height = mp4.Fixed32(uint32(h) << 16)
}

// cloneBytes returns a copy of b, so that the Track does not keep the
// caller's buffers.
func cloneBytes(b []byte) []byte {
	return append([]byte(nil), b...)
}

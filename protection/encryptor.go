package protection

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrUnsupported is returned (wrapped) by New for an init segment, and by
// Encrypt for media, whose layout this package does not encrypt: more than
// one track or fragment run, a sample entry other than avc1/avc3, hvc1/hev1
// and mp4a, NAL unit lengths other than 4 bytes, data offsets not relative
// to the moof, or media already encrypted.
var ErrUnsupported = errors.New("unsupported for encryption")

// Config configures an Encryptor.
type Config struct {
	// Init is the clear CMAF header of one track, as packager.Track.Init
	// returns it. Required. It is not modified, nor kept.
	Init []byte
	// Key is the key of the key period in force when the init segment is
	// first served: its KID becomes the default KID of the track (tenc)
	// and the KID of the init segment's pssh boxes. Required (a zero KID
	// is refused).
	Key Key
	// Track names the track among those of the stream ("v0", "a0"): the
	// constant IV is Key.TrackIV(Track). Empty is a name like any other.
	Track string
}

// Encryptor turns the clear init segment and media of one track into their
// 'cbcs' encrypted form (ISO/IEC 23001-7, the scheme CMAF 8.2 and HLS
// SAMPLE-AES share). It holds no state that changes: it is safe for
// concurrent use, and the same input and key always give the same bytes.
type Encryptor struct {
	init    []byte
	track   string
	kid     KID      // default KID of the init segment
	iv      [16]byte // constant IV of the tenc
	video   bool
	trex    *mp4.TrexBox
	mapper  *sliceMapper // video only
	crypt   int          // pattern: crypt_byte_block
	skip    int          // pattern: skip_byte_block
	trackID uint32
}

// New parses the clear init segment of cfg, adds the protection boxes and
// returns an Encryptor for the track's media.
//
// The init segment gets (ISO/IEC 23001-7 8, ISO/IEC 14496-12 8.12): the
// sample entry renamed encv or enca, with a sinf holding frma (the original
// format), schm ('cbcs', version 1.0) and schi/tenc (version 1:
// default_isProtected 1, default_Per_Sample_IV_Size 0, the constant IV,
// default_KID, and the pattern 1:9 for video, 0:0 for audio); and in the
// moov, the W3C common pssh with the KID (which EME ClearKey reads), then
// the pssh box of each of cfg.Key.Systems that has one.
func New(cfg Config) (*Encryptor, error) {
	if cfg.Key.KID == (KID{}) {
		return nil, errors.New("new encryptor: zero KID")
	}
	f, err := decodeInit(cfg.Init)
	if err != nil {
		return nil, fmt.Errorf("new encryptor: %w", err)
	}
	moov := f.Init.Moov
	if len(moov.Traks) != 1 || moov.Mvex == nil || len(moov.Mvex.Trexs) != 1 {
		return nil, fmt.Errorf("new encryptor: %w: want one track with one trex", ErrUnsupported)
	}
	stsd := moov.Trak.Mdia.Minf.Stbl.Stsd
	if len(stsd.Children) != 1 {
		return nil, fmt.Errorf("new encryptor: %w: %d sample entries", ErrUnsupported, len(stsd.Children))
	}
	e := &Encryptor{
		track:   cfg.Track,
		kid:     cfg.Key.KID,
		trex:    moov.Mvex.Trex,
		trackID: moov.Trak.Tkhd.TrackID,
	}
	switch se := stsd.Children[0].(type) {
	case *mp4.VisualSampleEntryBox:
		e.video, e.crypt, e.skip = true, videoCryptBlocks, videoSkipBlocks
		switch se.Type() {
		case "avc1", "avc3":
			if se.AvcC == nil {
				return nil, fmt.Errorf("new encryptor: %w: %s without avcC", ErrUnsupported, se.Type())
			}
			e.mapper, err = newAVCMapper(se.AvcC.SPSnalus, se.AvcC.PPSnalus)
		case "hvc1", "hev1":
			if se.HvcC == nil {
				return nil, fmt.Errorf("new encryptor: %w: %s without hvcC", ErrUnsupported, se.Type())
			}
			if se.HvcC.LengthSizeMinusOne != naluLengthSize-1 {
				return nil, fmt.Errorf("new encryptor: %w: %d-byte NAL unit lengths", ErrUnsupported, se.HvcC.LengthSizeMinusOne+1)
			}
			e.mapper, err = newHEVCMapper(se.HvcC.NaluArrays)
		default:
			return nil, fmt.Errorf("new encryptor: %w: sample entry %s", ErrUnsupported, se.Type())
		}
		if err != nil {
			return nil, fmt.Errorf("new encryptor: %s: %w", se.Type(), err)
		}
	case *mp4.AudioSampleEntryBox:
		if se.Type() != "mp4a" {
			return nil, fmt.Errorf("new encryptor: %w: sample entry %s", ErrUnsupported, se.Type())
		}
	default:
		return nil, fmt.Errorf("new encryptor: %w: sample entry %s", ErrUnsupported, stsd.Children[0].Type())
	}

	psshs, err := psshBoxes(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("new encryptor: %w", err)
	}
	iv := cfg.Key.TrackIV(cfg.Track)
	e.iv = iv
	// mp4.InitProtect writes the boxes listed above; the key it is given
	// is not used for 'cbcs'.
	if _, err := mp4.InitProtect(f.Init, cfg.Key.Value[:], iv[:], "cbcs", mp4.UUID(cfg.Key.KID[:]), psshs); err != nil {
		return nil, fmt.Errorf("new encryptor: protect init segment: %w", err)
	}
	sw := bits.NewFixedSliceWriter(int(f.Init.Size()))
	if err := f.Init.EncodeSW(sw); err != nil {
		return nil, fmt.Errorf("new encryptor: encode init segment: %w", err)
	}
	e.init = sw.Bytes()
	return e, nil
}

// Init returns the protected init segment. The bytes are shared and must
// not be modified.
func (e *Encryptor) Init() []byte { return e.init }

// DefaultKID returns the KID of the init segment's tenc.
func (e *Encryptor) DefaultKID() KID { return e.kid }

// decodeInit parses an init segment, turning a panic of the box decoders
// into an error.
func decodeInit(data []byte) (f *mp4.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("decode init segment: mp4ff panicked: %v", p)
		}
	}()
	f, err = mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode init segment: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Trak == nil {
		return nil, errors.New("decode init segment: no moov with a trak")
	}
	if len(f.Segments) > 0 {
		return nil, fmt.Errorf("decode init segment: %w: media after the moov", ErrUnsupported)
	}
	return f, nil
}

// psshBoxes returns the pssh boxes announcing k: the W3C common one with
// k.KID first (W3C "cenc" initData, ISO/IEC 23001-7 8.1.1 version 1), then
// those of k.Systems.
func psshBoxes(k Key) ([]*mp4.PsshBox, error) {
	out := []*mp4.PsshBox{{
		Version:  1,
		SystemID: mp4.UUID(SystemCommon.uuid()),
		KIDs:     []mp4.UUID{mp4.UUID(k.KID[:])},
	}}
	for _, s := range k.Systems {
		if len(s.PSSH) == 0 {
			continue
		}
		sid := s.ID.uuid()
		if sid == nil {
			return nil, fmt.Errorf("system ID %q is not a UUID", s.ID)
		}
		bs, err := mp4.PsshBoxesFromBytes(s.PSSH)
		if err != nil {
			return nil, fmt.Errorf("pssh of system %s: %w", s.ID, err)
		}
		for _, b := range bs {
			if !bytes.Equal(b.SystemID, sid) {
				return nil, fmt.Errorf("pssh of system %s: system ID %s", s.ID, b.SystemID)
			}
		}
		out = append(out, bs...)
	}
	return out, nil
}

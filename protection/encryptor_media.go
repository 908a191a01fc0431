package protection

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrMalformed is returned (wrapped) by Encrypt for media that is not a
// sequence of well-formed boxes with each moof followed by its mdat.
var ErrMalformed = errors.New("malformed media")

// tfhdDefaultBaseIsMoof is the tfhd flag making data offsets relative to
// the moof (ISO/IEC 14496-12 8.8.7.1), which CMAF requires and the
// packager sets.
const tfhdDefaultBaseIsMoof = 0x020000

// sbgpFragmentLocal is the group_description_index of the first sample
// group description of the fragment's own sgpd (ISO/IEC 14496-12 8.9.4).
const sbgpFragmentLocal = 0x10001

// Encrypt appends to dst the 'cbcs' encryption of media with key, and
// returns the extended slice. media is one CMAF chunk (moof+mdat) as the
// packager hands it out, or several (a whole segment): each moof+mdat is
// encrypted on its own, so encrypting the chunks of a segment one by one
// as they come and concatenating the results gives the same bytes as
// encrypting the segment. Boxes other than moof and mdat are copied. media
// is not modified.
//
// key is the key of the key period the media belongs to. When its KID is
// the init segment's default KID, each traf gets only the sample
// encryption boxes; otherwise (a later key period) the traf also gets a
// 'seig' sample group (sbgp+sgpd, ISO/IEC 23001-7 6 and 8.3) naming the
// key's KID and constant IV for all its samples, and the moof gets the pssh
// boxes of the key (the common one with its KID first), from which EME
// players learn the new KID (ISO/IEC 23001-7 8.1.1: pssh in moof).
//
// Video samples get a subsample map (see sliceMapper.subsamples) written
// as senc (flag 2, no IVs: the IV is constant), saiz and saio; audio
// samples are encrypted whole and, having no sample auxiliary information,
// get no senc, saiz or saio (CMAF, ISO/IEC 23000-19 8.2.2.1). The trun
// data_offset is moved by the growth of the moof.
func (e *Encryptor) Encrypt(dst, media []byte, key Key) ([]byte, error) {
	iv := key.TrackIV(e.track)
	if key.KID == e.kid && iv != e.iv {
		return dst, fmt.Errorf("encrypt: key %s has another IV than the init segment's", key.KID)
	}
	c, err := newCBCSCipher(key.Value, iv)
	if err != nil {
		return dst, fmt.Errorf("encrypt: %w", err)
	}
	fk := fragmentKey{key: key, cipher: c, iv: iv, rotated: key.KID != e.kid}
	if fk.rotated {
		if fk.psshs, err = psshBoxes(key); err != nil {
			return dst, fmt.Errorf("encrypt: %w", err)
		}
	}
	for pos := 0; pos < len(media); {
		size, _, typ, err := boxHeader(media[pos:])
		if err != nil {
			return dst, fmt.Errorf("encrypt: box at %d: %w", pos, err)
		}
		switch typ {
		case "moof":
			mdatPos := pos + size
			msize, mhdr, mtyp, err := boxHeader(media[mdatPos:])
			if err != nil || mtyp != "mdat" {
				return dst, fmt.Errorf("encrypt: %w: moof at %d not followed by an mdat", ErrMalformed, pos)
			}
			dst, err = e.encryptFragment(dst, media[pos:mdatPos], media[mdatPos:mdatPos+msize], mhdr, &fk)
			if err != nil {
				return dst, fmt.Errorf("encrypt: fragment at %d: %w", pos, err)
			}
			pos = mdatPos + msize
		case "mdat":
			return dst, fmt.Errorf("encrypt: %w: mdat at %d without a moof", ErrMalformed, pos)
		default:
			dst = append(dst, media[pos:pos+size]...)
			pos += size
		}
	}
	return dst, nil
}

// fragmentKey is what Encrypt prepares once for all fragments of a call.
type fragmentKey struct {
	key     Key
	cipher  *cbcsCipher
	iv      [16]byte
	rotated bool           // not the init segment's default KID: signal in-band
	psshs   []*mp4.PsshBox // for the moof, when rotated
}

// boxHeader reads the header of the box at the start of b and returns the
// box's size, the header's size and the type.
func boxHeader(b []byte) (size, hdr int, typ string, err error) {
	if len(b) < 8 {
		return 0, 0, "", fmt.Errorf("%w: %d bytes left, not a box header", ErrMalformed, len(b))
	}
	s := uint64(binary.BigEndian.Uint32(b))
	hdr = 8
	if s == 1 {
		if len(b) < 16 {
			return 0, 0, "", fmt.Errorf("%w: truncated large size", ErrMalformed)
		}
		s = binary.BigEndian.Uint64(b[8:])
		hdr = 16
	}
	if s < uint64(hdr) || s > uint64(len(b)) {
		return 0, 0, "", fmt.Errorf("%w: box size %d with %d bytes left", ErrMalformed, s, len(b))
	}
	return int(s), hdr, string(b[4:8]), nil
}

// encryptFragment appends the encryption of one moof and its mdat to dst.
func (e *Encryptor) encryptFragment(dst, moofData, mdatData []byte, mdatHdr int, fk *fragmentKey) ([]byte, error) {
	moof, err := decodeMoof(moofData)
	if err != nil {
		return dst, err
	}
	if len(moof.Trafs) != 1 || len(moof.Traf.Truns) != 1 || moof.Traf.Tfhd == nil {
		return dst, fmt.Errorf("%w: want one traf with one trun", ErrUnsupported)
	}
	traf, trun, tfhd := moof.Traf, moof.Traf.Trun, moof.Traf.Tfhd
	if tfhd.TrackID != e.trackID {
		return dst, fmt.Errorf("%w: track %d, init segment has track %d", ErrUnsupported, tfhd.TrackID, e.trackID)
	}
	if tfhd.Flags&tfhdDefaultBaseIsMoof == 0 || tfhd.HasBaseDataOffset() || !trun.HasDataOffset() {
		return dst, fmt.Errorf("%w: data offsets not relative to the moof", ErrUnsupported)
	}
	if traf.Senc != nil || traf.Saiz != nil || traf.Saio != nil || traf.Sgpd != nil || traf.Sbgp != nil || len(moof.Psshs) > 0 {
		return dst, fmt.Errorf("%w: already encrypted", ErrUnsupported)
	}
	trun.AddSampleDefaultValues(tfhd, e.trex)

	// Sample ranges, relative to the start of the moof (ISO/IEC
	// 14496-12 8.8.8: data_offset from the base data offset, the moof).
	payloadStart := int64(len(moofData) + mdatHdr)
	payloadEnd := int64(len(moofData) + len(mdatData))
	start := int64(trun.DataOffset)
	end := start
	for _, s := range trun.Samples {
		end += int64(s.Size)
	}
	if start < payloadStart || end > payloadEnd {
		return dst, fmt.Errorf("%w: samples at [%d,%d) outside the mdat payload [%d,%d)",
			ErrMalformed, start, end, payloadStart, payloadEnd)
	}

	// Subsample maps, computed on the clear bytes.
	var maps [][]mp4.SubSamplePattern
	if e.video {
		maps = make([][]mp4.SubSamplePattern, len(trun.Samples))
		off := start - int64(len(moofData))
		for i, s := range trun.Samples {
			sample := mdatData[off : off+int64(s.Size)]
			if maps[i], err = e.mapper.subsamples(nil, sample); err != nil {
				return dst, fmt.Errorf("sample %d: %w", i, err)
			}
			off += int64(s.Size)
		}
	}

	// New boxes. In the traf: the seig sample group of a later key period,
	// then saiz, saio and senc (video); in the moof, after the traf: the
	// pssh boxes of a later key period.
	oldSize := moof.Size()
	if fk.rotated {
		e.addSampleGroup(traf, uint32(len(trun.Samples)), fk)
		for _, p := range fk.psshs {
			if err := moof.AddChild(p); err != nil {
				return dst, err
			}
		}
	}
	var saio *mp4.SaioBox
	if e.video {
		saiz := mp4.NewSaizBox(len(maps))
		senc := mp4.NewSencBox(0, len(maps))
		for _, m := range maps {
			if err := saiz.AddSampleInfo(nil, m); err != nil {
				return dst, fmt.Errorf("%w: %w", ErrUnsupported, err)
			}
			if err := senc.AddSample(mp4.SencSample{SubSamples: m}); err != nil {
				return dst, err
			}
		}
		saio = mp4.NewSaioBox()
		for _, b := range []mp4.Box{saiz, saio, senc} {
			if err := traf.AddChild(b); err != nil {
				return dst, err
			}
		}
	}
	grow := int64(moof.Size() - oldSize)
	if int64(trun.DataOffset)+grow > 1<<31-1 {
		return dst, fmt.Errorf("%w: data offset overflows", ErrUnsupported)
	}
	trun.DataOffset += int32(grow)
	if saio != nil {
		// ISO/IEC 14496-12 8.7.9: the offset of the senc's sample
		// information (after its sample_count) from the moof.
		saio.SetOffset(sencDataOffset(moof))
	}

	// Write moof and mdat, then encrypt the samples in place.
	moofSize := int(moof.Size())
	base := len(dst)
	dst = grow0(dst, moofSize+len(mdatData))
	sw := bits.NewFixedSliceWriterFromSlice(dst[base : base+moofSize])
	if err := moof.EncodeSW(sw); err != nil {
		return dst[:base], fmt.Errorf("encode moof: %w", err)
	}
	if sw.Len() != moofSize {
		return dst[:base], fmt.Errorf("encode moof: wrote %d of %d bytes", sw.Len(), moofSize)
	}
	copy(dst[base+moofSize:], mdatData)
	pos := base + int(trun.DataOffset)
	for i, s := range trun.Samples {
		sample := dst[pos : pos+int(s.Size)]
		var m []mp4.SubSamplePattern
		if maps != nil {
			m = maps[i]
		}
		fk.cipher.encryptSample(sample, m, e.crypt, e.skip)
		pos += int(s.Size)
	}
	return dst, nil
}

// addSampleGroup maps all n samples of traf to a fragment-local 'seig'
// description of fk's key (ISO/IEC 23001-7 6: CencSampleEncryption-
// InformationGroupEntry; ISO/IEC 14496-12 8.9.2, 8.9.3).
func (e *Encryptor) addSampleGroup(traf *mp4.TrafBox, n uint32, fk *fragmentKey) {
	seig := &mp4.SeigSampleGroupEntry{
		CryptByteBlock: byte(e.crypt),
		SkipByteBlock:  byte(e.skip),
		IsProtected:    1,
		KID:            mp4.UUID(fk.key.KID[:]),
		ConstantIV:     fk.iv[:],
	}
	_ = traf.AddChild(&mp4.SbgpBox{
		GroupingType:            "seig",
		SampleCounts:            []uint32{n},
		GroupDescriptionIndices: []uint32{sbgpFragmentLocal},
	})
	_ = traf.AddChild(&mp4.SgpdBox{
		Version:            1,
		GroupingType:       "seig",
		DefaultLength:      uint32(seig.Size()),
		SampleGroupEntries: []mp4.SampleGroupEntry{seig},
	})
}

// sencDataOffset returns the offset from the start of moof of the first
// byte after the senc's sample_count: moof header, the boxes before the
// traf, the traf header, the traf's boxes before the senc, and the senc's
// header, version/flags and sample_count.
func sencDataOffset(moof *mp4.MoofBox) int64 {
	off := uint64(8)
	for _, c := range moof.Children {
		if c != mp4.Box(moof.Traf) {
			off += c.Size()
			continue
		}
		off += 8
		for _, tc := range moof.Traf.Children {
			if tc.Type() == "senc" {
				return int64(off + 8 + 4 + 4)
			}
			off += tc.Size()
		}
	}
	return -1
}

// decodeMoof parses a moof, turning a panic of the box decoders into an
// error.
func decodeMoof(data []byte) (moof *mp4.MoofBox, err error) {
	defer func() {
		if p := recover(); p != nil {
			moof, err = nil, fmt.Errorf("%w: mp4ff panicked on the moof: %v", ErrMalformed, p)
		}
	}()
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decode moof: %w", ErrMalformed, err)
	}
	moof, ok := box.(*mp4.MoofBox)
	if !ok || moof.Size() != uint64(len(data)) {
		return nil, fmt.Errorf("%w: moof does not re-encode to its size", ErrUnsupported)
	}
	return moof, nil
}

// grow0 extends b by n bytes.
func grow0(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

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
//
// On error, dst is returned as it was given: nothing of media is appended.
func (e *Encryptor) Encrypt(dst, media []byte, key Key) ([]byte, error) {
	out, err := e.encrypt(dst, media, key)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// encrypt is Encrypt, returning what it appended so far on error.
func (e *Encryptor) encrypt(dst, media []byte, key Key) ([]byte, error) {
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
// The moof is copied with the new boxes spliced in: the traf gets them at
// its end, the moof gets the pssh boxes at its end, and the sizes of both
// and the trun's data_offset are patched.
func (e *Encryptor) encryptFragment(dst, moofData, mdatData []byte, mdatHdr int, fk *fragmentKey) ([]byte, error) {
	if binary.BigEndian.Uint32(moofData) == 1 {
		return dst, fmt.Errorf("%w: moof with a 64-bit size", ErrUnsupported)
	}
	l, err := readMoof(moofData, e.trex.DefaultSampleSize)
	if err != nil {
		return dst, err
	}
	if l.trackID != e.trackID {
		return dst, fmt.Errorf("%w: track %d, init segment has track %d", ErrUnsupported, l.trackID, e.trackID)
	}
	if binary.BigEndian.Uint32(moofData[l.trafStart:]) == 1 {
		return dst, fmt.Errorf("%w: traf with a 64-bit size", ErrUnsupported)
	}

	// Sample ranges, relative to the start of the moof (ISO/IEC
	// 14496-12 8.8.8: data_offset from the base data offset, the moof).
	payloadStart := int64(len(moofData) + mdatHdr)
	payloadEnd := int64(len(moofData) + len(mdatData))
	start := int64(l.dataOffset)
	end := start
	for _, size := range l.sizes {
		end += int64(size)
	}
	if start < payloadStart || end > payloadEnd {
		return dst, fmt.Errorf("%w: samples at [%d,%d) outside the mdat payload [%d,%d)",
			ErrMalformed, start, end, payloadStart, payloadEnd)
	}

	// Subsample maps, computed on the clear bytes.
	var maps [][]mp4.SubSamplePattern
	if e.video {
		maps = make([][]mp4.SubSamplePattern, len(l.sizes))
		off := start - int64(len(moofData))
		for i, size := range l.sizes {
			sample := mdatData[off : off+int64(size)]
			if maps[i], err = e.mapper.subsamples(nil, sample); err != nil {
				return dst, fmt.Errorf("sample %d: %w", i, err)
			}
			off += int64(size)
		}
	}

	// New boxes: at the end of the traf, the seig sample group of a later
	// key period, then saiz, saio and senc (video); at the end of the
	// moof, the pssh boxes of a later key period.
	var trafBoxes, moofBoxes []mp4.Box
	if fk.rotated {
		trafBoxes = e.sampleGroup(uint32(len(l.sizes)), fk)
		for _, p := range fk.psshs {
			moofBoxes = append(moofBoxes, p)
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
		// ISO/IEC 14496-12 8.7.9: the offset from the moof of the senc's
		// sample information (after its header, version/flags and
		// sample_count).
		sencAt := uint64(l.trafEnd) + boxesSize(trafBoxes) + saiz.Size() + saio.Size()
		saio.SetOffset(int64(sencAt + 16))
		trafBoxes = append(trafBoxes, saiz, saio, senc)
	}
	trafGrow, moofGrow := boxesSize(trafBoxes), boxesSize(moofBoxes)
	newSize := uint64(len(moofData)) + trafGrow + moofGrow
	if newSize > 1<<32-1 || int64(l.dataOffset)+int64(trafGrow+moofGrow) > 1<<31-1 {
		return dst, fmt.Errorf("%w: moof or data offset overflows", ErrUnsupported)
	}

	// Write moof and mdat, then encrypt the samples in place.
	base := len(dst)
	dst = grow0(dst, int(newSize)+len(mdatData))
	out := dst[base:]
	n := copy(out, moofData[:l.trafEnd])
	sw := bits.NewFixedSliceWriterFromSlice(out[n : n+int(trafGrow)])
	for _, b := range trafBoxes {
		if err := b.EncodeSW(sw); err != nil {
			return dst[:base], fmt.Errorf("encode %s: %w", b.Type(), err)
		}
	}
	n += int(trafGrow)
	n += copy(out[n:], moofData[l.trafEnd:])
	sw = bits.NewFixedSliceWriterFromSlice(out[n : n+int(moofGrow)])
	for _, b := range moofBoxes {
		if err := b.EncodeSW(sw); err != nil {
			return dst[:base], fmt.Errorf("encode %s: %w", b.Type(), err)
		}
	}
	n += int(moofGrow)
	if n != int(newSize) {
		return dst[:base], fmt.Errorf("encode moof: wrote %d of %d bytes", n, newSize)
	}
	be := binary.BigEndian
	be.PutUint32(out, uint32(newSize))
	be.PutUint32(out[l.trafStart:], be.Uint32(moofData[l.trafStart:])+uint32(trafGrow))
	dataOffset := l.dataOffset + int32(trafGrow+moofGrow)
	be.PutUint32(out[l.dataOffsetAt:], uint32(dataOffset))
	copy(out[n:], mdatData)

	pos := int(dataOffset)
	for i, size := range l.sizes {
		sample := out[pos : pos+int(size)]
		var m []mp4.SubSamplePattern
		if maps != nil {
			m = maps[i]
		}
		fk.cipher.encryptSample(sample, m, e.crypt, e.skip)
		pos += int(size)
	}
	return dst, nil
}

// sampleGroup returns the boxes mapping all n samples of a traf to a
// fragment-local 'seig' description of fk's key (ISO/IEC 23001-7 6:
// CencSampleEncryptionInformationGroupEntry; ISO/IEC 14496-12 8.9.2,
// 8.9.3).
func (e *Encryptor) sampleGroup(n uint32, fk *fragmentKey) []mp4.Box {
	seig := &mp4.SeigSampleGroupEntry{
		CryptByteBlock: byte(e.crypt),
		SkipByteBlock:  byte(e.skip),
		IsProtected:    1,
		KID:            mp4.UUID(fk.key.KID[:]),
		ConstantIV:     fk.iv[:],
	}
	return []mp4.Box{
		&mp4.SbgpBox{
			GroupingType:            "seig",
			SampleCounts:            []uint32{n},
			GroupDescriptionIndices: []uint32{sbgpFragmentLocal},
		},
		&mp4.SgpdBox{
			Version:            1,
			GroupingType:       "seig",
			DefaultLength:      uint32(seig.Size()),
			SampleGroupEntries: []mp4.SampleGroupEntry{seig},
		},
	}
}

// boxesSize returns the total size of bs.
func boxesSize(bs []mp4.Box) uint64 {
	var n uint64
	for _, b := range bs {
		n += b.Size()
	}
	return n
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

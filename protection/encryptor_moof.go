package protection

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Flags of tfhd and trun (ISO/IEC 14496-12 8.8.7.1, 8.8.8.1).
const (
	tfhdBaseDataOffset      = 0x000001
	tfhdSampleDescription   = 0x000002
	tfhdDefaultDuration     = 0x000008
	tfhdDefaultSize         = 0x000010
	trunDataOffset          = 0x000001
	trunFirstSampleFlags    = 0x000004
	trunSampleDuration      = 0x000100
	trunSampleSize          = 0x000200
	trunSampleFieldsPresent = 0x000f00
)

// moofLayout is what Encrypt needs of a moof: where its one traf ends,
// where the trun's data_offset is, and the sample sizes. Reading the moof
// in place, instead of decoding it into mp4ff's boxes and encoding it
// again, keeps its bytes as they are and saves a third of the CPU time of
// Encrypt on a low bit rate stream.
type moofLayout struct {
	trafStart, trafEnd int // the traf box in the moof
	dataOffsetAt       int // offset of the trun's data_offset in the moof
	dataOffset         int32
	trackID            uint32
	sizes              []uint32
}

// readMoof reads the layout of a moof: boxes mfhd, one traf and others,
// the traf holding tfhd (default-base-is-moof, no base_data_offset), one
// trun with a data_offset, and no sample encryption or sample group box.
// defaultSize is the trex's default_sample_size.
func readMoof(moof []byte, defaultSize uint32) (*moofLayout, error) {
	l := &moofLayout{trafStart: -1}
	err := eachBox(moof, 8, func(typ string, start, end int) error {
		switch typ {
		case "traf":
			if l.trafStart >= 0 {
				return fmt.Errorf("%w: more than one traf", ErrUnsupported)
			}
			l.trafStart, l.trafEnd = start, end
			return l.readTraf(moof, defaultSize)
		case "pssh":
			return fmt.Errorf("%w: already encrypted (pssh in moof)", ErrUnsupported)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if l.trafStart < 0 || l.dataOffsetAt == 0 {
		return nil, fmt.Errorf("%w: want one traf with one trun", ErrUnsupported)
	}
	return l, nil
}

// readTraf reads the traf at l.trafStart.
func (l *moofLayout) readTraf(moof []byte, defaultSize uint32) error {
	var (
		tfhd, trun bool
		size       = defaultSize
	)
	err := eachBox(moof[:l.trafEnd], l.trafStart+8, func(typ string, start, end int) error {
		b := moof[start:end]
		switch typ {
		case "tfhd":
			if tfhd || len(b) < 16 {
				return fmt.Errorf("%w: tfhd", ErrMalformed)
			}
			tfhd = true
			flags := binary.BigEndian.Uint32(b[8:]) & 0xffffff
			if flags&tfhdDefaultBaseIsMoof == 0 || flags&tfhdBaseDataOffset != 0 {
				return fmt.Errorf("%w: data offsets not relative to the moof", ErrUnsupported)
			}
			l.trackID = binary.BigEndian.Uint32(b[12:])
			if flags&tfhdDefaultSize != 0 {
				at := 16
				for _, f := range []uint32{tfhdSampleDescription, tfhdDefaultDuration} {
					if flags&f != 0 {
						at += 4
					}
				}
				if len(b) < at+4 {
					return fmt.Errorf("%w: tfhd", ErrMalformed)
				}
				size = binary.BigEndian.Uint32(b[at:])
			}
		case "trun":
			if trun || !tfhd {
				return fmt.Errorf("%w: want one trun after the tfhd", ErrUnsupported)
			}
			trun = true
			return l.readTrun(b, start, size)
		case "senc", "saiz", "saio", "sbgp", "sgpd", "uuid":
			return fmt.Errorf("%w: traf already has a %s box", ErrUnsupported, typ)
		}
		return nil
	})
	if err == nil && !trun {
		err = fmt.Errorf("%w: traf without trun", ErrUnsupported)
	}
	return err
}

// readTrun reads the data_offset and the sample sizes of a trun at start
// in the moof.
func (l *moofLayout) readTrun(b []byte, start int, defaultSize uint32) error {
	if len(b) < 16 {
		return fmt.Errorf("%w: trun", ErrMalformed)
	}
	flags := binary.BigEndian.Uint32(b[8:]) & 0xffffff
	n := binary.BigEndian.Uint32(b[12:])
	if flags&trunDataOffset == 0 {
		return fmt.Errorf("%w: trun without data_offset", ErrUnsupported)
	}
	at := 16
	l.dataOffsetAt = start + at
	if len(b) < at+4 {
		return fmt.Errorf("%w: trun", ErrMalformed)
	}
	l.dataOffset = int32(binary.BigEndian.Uint32(b[at:]))
	at += 4
	if flags&trunFirstSampleFlags != 0 {
		at += 4
	}
	entry := 4 * bits.OnesCount32(flags&trunSampleFieldsPresent)
	if uint64(len(b)-at) != uint64(n)*uint64(entry) || (entry == 0 && n > uint32(len(b))) {
		return fmt.Errorf("%w: trun of %d bytes for %d samples", ErrMalformed, len(b), n)
	}
	sizeAt := 0
	if flags&trunSampleDuration != 0 {
		sizeAt = 4
	}
	l.sizes = make([]uint32, n)
	for i := range l.sizes {
		if flags&trunSampleSize != 0 {
			l.sizes[i] = binary.BigEndian.Uint32(b[at+i*entry+sizeAt:])
		} else {
			l.sizes[i] = defaultSize
		}
	}
	return nil
}

// eachBox calls f with the type and the extent of each box of b from
// offset at to the end of b. The boxes must fill b exactly.
func eachBox(b []byte, at int, f func(typ string, start, end int) error) error {
	for at < len(b) {
		size, _, typ, err := boxHeader(b[at:])
		if err != nil {
			return err
		}
		if err := f(typ, at, at+size); err != nil {
			return err
		}
		at += size
	}
	return nil
}

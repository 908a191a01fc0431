package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A low-latency DASH player (dash.js in low-latency mode) reads a segment
// being produced chunk by chunk, as its chunked body arrives, and plays
// each CMAF chunk (ISO/IEC 23000-19 7.3.2.3: a moof and its mdat, styp or
// prft before it) as soon as it is complete. The players here do the
// same: they walk the body's boxes, keep each moof (small) to read its
// timing, drop each mdat without reading it (in the kernel, where the
// lane can: see discardRaw), and credit the chunk's media when the
// mdat's last byte is in.

// maxMoofBytes bounds a moof a player keeps.
const maxMoofBytes = 1 << 20

// boxReader is a segment body, read while it arrives.
type boxReader interface {
	// readFull reads len(p) bytes: io.EOF when the body ended before
	// the first of them, io.ErrUnexpectedEOF when it ended within them.
	readFull(p []byte) error
	// skip drops the next n bytes.
	skip(n int64) error
}

// chunkSink receives the chunks of a segment as they arrive.
type chunkSink interface {
	// chunk is called once the mdat of a chunk has arrived, with the
	// moof before it (valid during the call; nil when none came).
	chunk(moof []byte)
}

// errBox is a segment body that is not a run of ISO BMFF boxes.
var errBox = errors.New("malformed box in segment")

// walkChunks reads a segment body of ISO BMFF boxes (ISO/IEC 14496-12
// 4.2) from r: each moof into *moof (reused), each mdat dropped and then
// given to sink with the moof before it, other boxes dropped. hdr is
// scratch space for box headers. It returns the bytes read.
func walkChunks(r boxReader, hdr *[16]byte, moof *[]byte, sink chunkSink) (int64, error) {
	var total int64
	*moof = (*moof)[:0]
	for {
		err := r.readFull(hdr[:8])
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		size, hl := uint64(binary.BigEndian.Uint32(hdr[:4])), uint64(8)
		switch size {
		case 0: // to the end of the body: not in a segment of chunks
			return total, fmt.Errorf("%w: a box to the end of the file", errBox)
		case 1:
			if err := r.readFull(hdr[8:16]); err != nil {
				return total, unexpectedEOF(err)
			}
			size, hl = binary.BigEndian.Uint64(hdr[8:16]), 16
		}
		if size < hl || size > 1<<40 {
			return total, fmt.Errorf("%w: size %d", errBox, size)
		}
		switch typ := hdr[4:8]; {
		case string(typ) == "moof":
			if size > maxMoofBytes {
				return total, fmt.Errorf("%w: moof of %d bytes", errBox, size)
			}
			m := append((*moof)[:0], hdr[:hl]...)
			m = append(m, make([]byte, int(size-hl))...)[:size]
			if err := r.readFull(m[hl:]); err != nil {
				return total, unexpectedEOF(err)
			}
			*moof = m
		case string(typ) == "mdat":
			if err := r.skip(int64(size - hl)); err != nil {
				return total, unexpectedEOF(err)
			}
			sink.chunk(*moof)
			*moof = (*moof)[:0]
		default:
			if err := r.skip(int64(size - hl)); err != nil {
				return total, unexpectedEOF(err)
			}
		}
		total += int64(size)
	}
}

// moofTiming reads the timing of a moof's first track fragment (ISO/IEC
// 14496-12 8.8): its baseMediaDecodeTime (tfdt) and the summed durations
// of its samples (trun, or tfhd's default duration), in the track's
// timescale. ok is false when the moof does not say.
func moofTiming(moof []byte) (start, duration uint64, ok bool) {
	body, ok := boxBody(moof, boxType{'m', 'o', 'o', 'f'})
	if !ok {
		return 0, 0, false
	}
	traf, ok := child(body, boxType{'t', 'r', 'a', 'f'})
	if !ok {
		return 0, 0, false
	}
	var defaultDuration uint64
	haveDefault, haveStart, haveRun := false, false, false
	for b := traf; len(b) >= 8; {
		typ, payload, rest, ok := nextBox(b)
		if !ok {
			return 0, 0, false
		}
		b = rest
		if len(payload) < 4 {
			continue
		}
		version, flags := payload[0], uint32(payload[1])<<16|uint32(payload[2])<<8|uint32(payload[3])
		p := payload[4:]
		switch {
		case typ == boxType{'t', 'f', 'h', 'd'}:
			// track_ID, then the optional fields in order.
			off := 4
			for _, f := range [...]struct {
				flag uint32
				size int
			}{{0x01, 8}, {0x02, 4}} {
				if flags&f.flag != 0 {
					off += f.size
				}
			}
			if flags&0x08 != 0 {
				if len(p) < off+4 {
					return 0, 0, false
				}
				defaultDuration, haveDefault = uint64(binary.BigEndian.Uint32(p[off:])), true
			}
		case typ == boxType{'t', 'f', 'd', 't'}:
			switch {
			case version == 1 && len(p) >= 8:
				start = binary.BigEndian.Uint64(p)
			case version == 0 && len(p) >= 4:
				start = uint64(binary.BigEndian.Uint32(p))
			default:
				return 0, 0, false
			}
			haveStart = true
		case typ == boxType{'t', 'r', 'u', 'n'}:
			d, ok := trunDuration(p, flags, defaultDuration, haveDefault)
			if !ok {
				return 0, 0, false
			}
			duration += d
			haveRun = true
		}
	}
	return start, duration, haveStart && haveRun
}

// trunDuration sums the sample durations of a trun's payload p (after
// version and flags).
func trunDuration(p []byte, flags uint32, def uint64, haveDef bool) (uint64, bool) {
	if len(p) < 4 {
		return 0, false
	}
	count := uint64(binary.BigEndian.Uint32(p))
	off := 4
	if flags&0x01 != 0 { // data_offset
		off += 4
	}
	if flags&0x04 != 0 { // first_sample_flags
		off += 4
	}
	if flags&0x100 == 0 {
		return count * def, haveDef && count < 1<<24
	}
	per := 4
	for _, f := range [...]uint32{0x200, 0x400, 0x800} {
		if flags&f != 0 {
			per += 4
		}
	}
	if uint64(len(p)-min(off, len(p))) < count*uint64(per) {
		return 0, false
	}
	var sum uint64
	for i := uint64(0); i < count; i++ {
		sum += uint64(binary.BigEndian.Uint32(p[off+int(i)*per:]))
	}
	return sum, true
}

// boxType is a box's four-character type.
type boxType [4]byte

// nextBox splits the first box off b: its type, its payload, the rest.
func nextBox(b []byte) (typ boxType, payload, rest []byte, ok bool) {
	if len(b) < 8 {
		return typ, nil, nil, false
	}
	size, hl := uint64(binary.BigEndian.Uint32(b)), uint64(8)
	if size == 1 {
		if len(b) < 16 {
			return typ, nil, nil, false
		}
		size, hl = binary.BigEndian.Uint64(b[8:]), 16
	}
	if size < hl || size > uint64(len(b)) {
		return typ, nil, nil, false
	}
	return boxType(b[4:8]), b[hl:size], b[size:], true
}

// boxBody returns the payload of b, a whole box of type typ.
func boxBody(b []byte, typ boxType) ([]byte, bool) {
	t, payload, _, ok := nextBox(b)
	return payload, ok && t == typ
}

// child returns the payload of the first box of type typ in b.
func child(b []byte, typ boxType) ([]byte, bool) {
	for len(b) >= 8 {
		t, payload, rest, ok := nextBox(b)
		if !ok {
			return nil, false
		}
		if t == typ {
			return payload, true
		}
		b = rest
	}
	return nil, false
}

package packager

import (
	"encoding/binary"
	"slices"
)

// Fixed sizes of the boxes of a chunk (ISO/IEC 14496-12 8.8): moof header,
// mfhd, traf header, tfhd (flags default-base-is-moof, no optional field),
// tfdt version 1, trun header with sample_count and data_offset.
const (
	moofHeaderSize = 8
	mfhdSize       = 16
	trafHeaderSize = 8
	tfhdSize       = 16
	tfdtSize       = 20
	trunHeaderSize = 20
	mdatHeaderSize = 8
	moofFixedSize  = moofHeaderSize + mfhdSize + trafHeaderSize + tfhdSize + tfdtSize + trunHeaderSize

	// tfhdDefaultBaseIsMoof is the tfhd flag making data offsets relative to
	// the start of the moof (ISO/IEC 14496-12 8.8.7.1), as CMAF requires.
	tfhdDefaultBaseIsMoof = 0x020000
)

// Sample flags (ISO/IEC 14496-12 8.8.3.1), the values of mp4ff's
// SyncSampleFlags and SetNonSyncSampleFlags: a sync sample depends on no other
// (sample_depends_on 2); any other sample depends on others
// (sample_depends_on 1) and has sample_is_non_sync_sample set.
const (
	syncSampleFlags    uint32 = 0x02000000
	nonSyncSampleFlags uint32 = 0x01010000
)

// openSegment starts a segment whose first sample decodes at start.
func (t *Track) openSegment(start int64) {
	t.segOpen = true
	t.segStart = start
	t.segDur = 0
	t.segSamples = 0
	t.segChunks = make([]ChunkInfo, 0, max(4, t.lastSegChunks))
	// One allocation per segment in the steady state: room for a segment a
	// bit larger than the previous one. If it still has to grow, chunks
	// handed out earlier keep their bytes in the old array.
	if t.lastSegSize > 0 {
		t.segBuf = make([]byte, 0, t.lastSegSize+t.lastSegSize/8+4096)
	} else {
		t.segBuf = nil
	}
	t.nextBoundary = t.boundaryAfter(start)
}

// openChunk starts a chunk whose first sample decodes at start.
func (t *Track) openChunk(start int64, independent bool) {
	t.chunkOpen = true
	t.chunkStart = start
	t.chunkDur = 0
	t.chunkIndependent = independent
	t.samples = t.samples[:0]
	t.mdat = t.mdat[:0]
}

// addSample appends the trun entry of a sample whose data has been appended
// to t.mdat; its duration is set by finishSample.
func (t *Track) addSample(size uint32, sync bool, cto int32) {
	flags := nonSyncSampleFlags
	if sync {
		flags = syncSampleFlags
	}
	t.samples = append(t.samples, sample{size: size, flags: flags, cto: cto})
}

// finishSample gives the last sample of the chunk in progress its duration.
func (t *Track) finishSample(dur int64) {
	t.samples[len(t.samples)-1].dur = uint32(dur)
	t.chunkDur += dur
	t.segDur += dur
	t.lastDur = dur
}

// chunkFull reports whether the chunk in progress has reached its target
// duration, or whether adding next more payload bytes would make it too big.
func (t *Track) chunkFull(next int) bool {
	return t.chunkDur >= t.chunkTicks || len(t.mdat)+next > maxChunkPayload
}

// closeChunk encodes the chunk in progress as moof+mdat at the end of the
// segment buffer and hands it to OnChunk. All its samples must have their
// duration.
func (t *Track) closeChunk() {
	if !t.chunkOpen {
		return
	}
	t.chunkOpen = false
	n := len(t.samples)
	if n == 0 {
		return
	}
	moofSize := moofFixedSize + n*t.sampleBytes
	size := moofSize + mdatHeaderSize + len(t.mdat)

	t.segBuf = slices.Grow(t.segBuf, size)
	off := len(t.segBuf)
	t.segBuf = t.segBuf[:off+size]
	b := t.segBuf[off : off+size : off+size]
	t.writeMoof(b[:moofSize])
	binary.BigEndian.PutUint32(b[moofSize:], uint32(mdatHeaderSize+len(t.mdat)))
	copy(b[moofSize+4:], "mdat")
	copy(b[moofSize+mdatHeaderSize:], t.mdat)
	t.seqNum++

	t.segChunks = append(t.segChunks, ChunkInfo{
		Offset:      off,
		Size:        size,
		Start:       t.chunkStart,
		Duration:    t.chunkDur,
		Independent: t.chunkIndependent,
	})
	t.segSamples += n
	if t.onChunk != nil {
		t.onChunk(&Chunk{
			SegmentNumber: t.nextNumber,
			Index:         len(t.segChunks) - 1,
			Start:         t.chunkStart,
			Duration:      t.chunkDur,
			Data:          b,
			Segment:       t.segBuf[: off+size : off+size],
			Independent:   t.chunkIndependent,
		})
	}
	t.samples = t.samples[:0]
	t.mdat = t.mdat[:0]
}

// closeSegment closes the chunk in progress, then the segment in progress,
// and hands the segment to OnSegment.
func (t *Track) closeSegment() {
	t.closeChunk()
	if !t.segOpen {
		return
	}
	t.segOpen = false
	if t.segSamples == 0 {
		return
	}
	data := t.segBuf[:len(t.segBuf):len(t.segBuf)]
	seg := &Segment{
		Number:      t.nextNumber,
		Start:       t.segStart,
		Duration:    t.segDur,
		Timescale:   t.info.Timescale,
		Data:        data,
		Chunks:      t.segChunks,
		Samples:     t.segSamples,
		Independent: t.segChunks[0].Independent,
	}
	t.nextNumber++
	t.lastSegSize = len(data)
	t.lastSegChunks = len(t.segChunks)
	t.segBuf = nil
	t.segChunks = nil
	t.onSegment(seg)
}

// writeMoof encodes the moof of the chunk in progress into b, which has
// exactly its size. Layout per ISO/IEC 14496-12: moof (8.8.4) { mfhd (8.8.5),
// traf (8.8.6) { tfhd (8.8.7), tfdt (8.8.12), trun (8.8.8) } }.
func (t *Track) writeMoof(b []byte) {
	be := binary.BigEndian
	putHeader := func(off, size int, typ string) {
		be.PutUint32(b[off:], uint32(size))
		copy(b[off+4:off+8], typ)
	}
	moofSize := len(b)
	putHeader(0, moofSize, "moof")

	putHeader(8, mfhdSize, "mfhd")
	be.PutUint32(b[16:], 0) // version 0, flags 0
	be.PutUint32(b[20:], t.seqNum)

	putHeader(24, moofSize-24, "traf")

	putHeader(32, tfhdSize, "tfhd")
	be.PutUint32(b[40:], tfhdDefaultBaseIsMoof) // version 0
	be.PutUint32(b[44:], trackID)

	putHeader(48, tfdtSize, "tfdt")
	be.PutUint32(b[56:], 1<<24) // version 1: 64-bit baseMediaDecodeTime
	be.PutUint64(b[60:], uint64(t.chunkStart))

	putHeader(68, moofSize-68, "trun")
	be.PutUint32(b[76:], 1<<24|t.trunFlags) // version 1: signed composition offsets
	be.PutUint32(b[80:], uint32(len(t.samples)))
	be.PutUint32(b[84:], uint32(moofSize+mdatHeaderSize)) // data_offset from moof start
	p := b[moofFixedSize:]
	if t.sampleBytes == 16 {
		for i := range t.samples {
			s := &t.samples[i]
			e := p[16*i : 16*i+16]
			be.PutUint32(e[0:], s.dur)
			be.PutUint32(e[4:], s.size)
			be.PutUint32(e[8:], s.flags)
			be.PutUint32(e[12:], uint32(s.cto))
		}
		return
	}
	for i := range t.samples {
		s := &t.samples[i]
		e := p[12*i : 12*i+12]
		be.PutUint32(e[0:], s.dur)
		be.PutUint32(e[4:], s.size)
		be.PutUint32(e[8:], s.flags)
	}
}

package origin

import (
	"context"
	"fmt"

	"github.com/golivestream/live/packager"
	"github.com/golivestream/live/protection"
)

// trackCipher encrypts what one packager hands out, between the packager
// and the stream: each chunk as it comes (so that a segment streamed while
// produced, and an LL-HLS part, are encrypted bytes), and each segment,
// made of the encrypted chunks. Encrypting the chunks one by one and
// concatenating them gives the encryption of the whole segment
// (protection.Encryptor.Encrypt), so a player or a cache that got the
// parts got the segment. Its methods are called from the packager's
// goroutine only.
type trackCipher struct {
	keys *streamKeys
	rid  string
	enc  *protection.Encryptor

	// The segment being encrypted.
	open   bool
	number uint64
	period uint64
	key    protection.Key
	// data is the segment's encrypted chunks so far: only appended to,
	// so every prefix handed out stays as it was.
	data   []byte
	chunks []packager.ChunkInfo
	// err is the first failure since the last takeErr: the segment it
	// hit is not added, and the session's writer reports it.
	err error
}

// newTrackCipher returns the cipher of rendition rid, whose clear init
// segment is init, for an instance encrypted with keys; nil for a clear
// instance (keys nil).
func newTrackCipher(keys *streamKeys, rid string, init []byte) (*trackCipher, error) {
	if keys == nil {
		return nil, nil
	}
	enc, err := keys.encryptor(rid, init)
	if err != nil {
		return nil, err
	}
	return &trackCipher{keys: keys, rid: rid, enc: enc}, nil
}

// init returns the protected init segment.
func (c *trackCipher) init() []byte { return c.enc.Init() }

// begin starts segment n, which starts at start ticks of timescale ts,
// with the key of its period, and asks for the next period's key ahead.
func (c *trackCipher) begin(n uint64, start int64, ts uint32) error {
	p := c.keys.prot
	c.open, c.number, c.data, c.chunks = false, n, nil, nil
	c.period = keyPeriodOf(start, ts, p.cfg.KeyPeriod, p.segment)
	k, err := c.keys.key(context.Background(), c.period)
	if err != nil {
		return err
	}
	c.key, c.open = k, true
	if p.cfg.KeyPeriod > 0 {
		c.keys.ahead(c.period + 1)
	}
	return nil
}

// chunk returns pc encrypted, its Segment the segment's encrypted chunks
// so far; nil when it cannot be (recorded for takeErr), or when an
// earlier chunk of its segment was not: its segment will not be streamed
// whole.
func (c *trackCipher) chunk(pc *packager.Chunk, ts uint32) *packager.Chunk {
	if pc.Index == 0 {
		if err := c.begin(pc.SegmentNumber, pc.Start, ts); err != nil {
			c.fail(err)
			return nil
		}
	}
	if !c.open || c.number != pc.SegmentNumber || len(c.chunks) != pc.Index {
		return nil
	}
	before := len(c.data)
	data, err := c.enc.Encrypt(c.data, pc.Data, c.key)
	if err != nil {
		c.open = false
		c.fail(fmt.Errorf("encrypt chunk %d of segment %d: %w", pc.Index, pc.SegmentNumber, err))
		return nil
	}
	c.data = data
	c.chunks = append(c.chunks, packager.ChunkInfo{
		Offset: before, Size: len(data) - before,
		Start: pc.Start, Duration: pc.Duration, Independent: pc.Independent,
	})
	out := *pc
	out.Data = data[before:len(data):len(data)]
	out.Segment = data[:len(data):len(data)]
	return &out
}

// segment returns seg encrypted, from its encrypted chunks, or an error:
// then seg must not be added (a clear segment of an encrypted stream
// would be a leak, a missing one a hole players skip).
func (c *trackCipher) segment(seg *packager.Segment) (*packager.Segment, error) {
	defer func() { c.open, c.data, c.chunks = false, nil, nil }()
	if !c.open || c.number != seg.Number || len(c.chunks) > len(seg.Chunks) {
		// Chunks went missing (no OnChunk for them): from the start.
		if err := c.begin(seg.Number, seg.Start, seg.Timescale); err != nil {
			return nil, c.fail(err)
		}
	}
	for i := len(c.chunks); i < len(seg.Chunks); i++ {
		ci := seg.Chunks[i]
		before := len(c.data)
		data, err := c.enc.Encrypt(c.data, seg.Data[ci.Offset:ci.Offset+ci.Size], c.key)
		if err != nil {
			return nil, c.fail(fmt.Errorf("encrypt segment %d: %w", seg.Number, err))
		}
		c.data = data
		ci.Offset, ci.Size = before, len(data)-before
		c.chunks = append(c.chunks, ci)
	}
	out := *seg
	out.Data = c.data[:len(c.data):len(c.data)]
	out.Chunks = c.chunks
	return &out, nil
}

// fail records err, the first since the last takeErr, and returns it.
func (c *trackCipher) fail(err error) error {
	err = fmt.Errorf("rendition %s: %w", c.rid, err)
	if c.err == nil {
		c.err = err
	}
	return err
}

// takeErr returns and clears the failure recorded since the last call.
func (c *trackCipher) takeErr() error {
	if c == nil {
		return nil
	}
	err := c.err
	c.err = nil
	return err
}

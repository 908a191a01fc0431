package ingest

import (
	"errors"
	"fmt"
)

// ErrProtocol is the error of a client that breaks a rule of RTMP the
// server enforces before the RTMP library sees its bytes.
var ErrProtocol = errors.New("rtmp protocol violation")

const (
	// maxChunkSize is the largest chunk size a client may set. The RTMP
	// library allocates a chunk's whole body, up to the chunk size, as soon
	// as its header arrives, so a client setting 10 MB could make the
	// server hold 10 MB per connection for a 12-byte header. Encoders
	// stay well below: ffmpeg keeps the default 128, OBS sets 4096,
	// gortmplib's publisher (the demo) 65536; SRS refuses above 65536 too.
	maxChunkSize = 65536
	// handshakeLen is what a client sends before its first chunk: C0, C1
	// and C2.
	handshakeLen = 1 + 1536 + 1536
	// rtmpeVersion is the C0 of the encrypted handshake (RTMPE), whose
	// chunks the guard could not read.
	rtmpeVersion = 6
	// typeSetChunkSize is the message type of Set Chunk Size.
	typeSetChunkSize = 1
)

// chunkGuard follows the chunk stream a client sends, as gortmplib's reader
// will parse it (pkg/rawmessage: chunk stream ids 2 to 63, a chunk body of
// at most the chunk size in effect), and refuses a Set Chunk Size above
// maxChunkSize before the library applies it. It sees the bytes when they
// are read from the socket, before the library's buffers: a refusal stops
// everything after the bad message. It keeps a few bytes of state per
// chunk stream and copies nothing but headers. Not safe for concurrent use.
type chunkGuard struct {
	skip      int    // handshake bytes still to pass
	chunkSize uint32 // in effect for the next chunk
	off       bool   // the stream is one the library refuses: stop following
	err       error  // the refusal, once made

	// The chunk being read: its header bytes so far (basic header, message
	// header, extended timestamp), how many it has, and once it is
	// complete, the body bytes left.
	head     [16]byte
	headLen  int
	bodyLeft uint32
	cs       *chunkStream

	streams [64]chunkStream
}

// chunkStream is what the library keeps per chunk stream id.
type chunkStream struct {
	started bool   // a type 0 chunk came: types 1 to 3 may follow
	extTS   bool   // its last timestamp field was extended
	typ     uint8  // message type
	length  uint32 // message length
	recv    uint32 // message bytes received so far (0: between messages)
	// payload holds the first bytes of a Set Chunk Size message.
	payload [4]byte
}

func newChunkGuard() *chunkGuard {
	return &chunkGuard{skip: handshakeLen, chunkSize: 128}
}

// feed follows p, the next bytes from the client, and returns the refusal
// if p breaks a rule; the bytes must then not reach the library.
func (g *chunkGuard) feed(p []byte) error {
	if g.err != nil {
		return g.err
	}
	for len(p) > 0 && !g.off {
		switch {
		case g.skip > 0:
			if g.skip == handshakeLen && p[0] == rtmpeVersion {
				g.err = fmt.Errorf("%w: encrypted RTMP (RTMPE) is not supported; use rtmp:// or rtmps://", ErrProtocol)
				return g.err
			}
			n := min(g.skip, len(p))
			g.skip -= n
			p = p[n:]
		case g.cs == nil: // in a chunk's header
			n, done := g.header(p)
			p = p[n:]
			if done && g.startBody() != nil {
				return g.err
			}
		default: // in a chunk's body
			n := int(min(g.bodyLeft, uint32(min(len(p), 1<<30))))
			g.body(p[:n])
			p = p[n:]
			if g.bodyLeft == 0 && g.endChunk() != nil {
				return g.err
			}
		}
	}
	return nil
}

// header takes the header bytes of p it needs and reports how many, and
// whether the header is complete.
func (g *chunkGuard) header(p []byte) (int, bool) {
	used := 0
	for used < len(p) {
		want := g.headerLen()
		if g.headLen == want {
			return used, true
		}
		g.head[g.headLen] = p[used]
		g.headLen++
		used++
		if g.headLen == 1 && g.head[0]&0x3f < 2 {
			// An extended chunk stream id: gortmplib ends the connection
			// with its own error.
			g.off = true
			return used, false
		}
	}
	return used, g.headLen == g.headerLen()
}

// headerLen is the length of the current chunk's header, as far as its
// bytes so far tell.
func (g *chunkGuard) headerLen() int {
	if g.headLen == 0 {
		return 1
	}
	fmtType := g.head[0] >> 6
	n := 1 + [4]int{11, 7, 3, 0}[fmtType]
	if g.headLen < n {
		return n
	}
	var extended bool
	if fmtType == 3 {
		extended = g.streams[g.head[0]&0x3f].extTS
	} else {
		extended = be24(g.head[1:4]) >= 0xffffff
	}
	if extended {
		n += 4
	}
	return n
}

// startBody applies a complete chunk header to its chunk stream, as the
// library does, and sets how long the chunk's body is.
func (g *chunkGuard) startBody() error {
	cs := &g.streams[g.head[0]&0x3f]
	fmtType := g.head[0] >> 6
	switch {
	case fmtType == 0 && cs.recv == 0:
		cs.started = true
		cs.length, cs.typ = be24(g.head[4:7]), g.head[7]
		cs.extTS = g.timestampExtended()
	case fmtType == 1 && cs.started && cs.recv == 0:
		cs.length, cs.typ = be24(g.head[4:7]), g.head[7]
		cs.extTS = g.timestampExtended()
	case fmtType == 2 && cs.started && cs.recv == 0:
		cs.extTS = g.timestampExtended()
	case fmtType == 3 && (cs.started || cs.recv != 0):
	default:
		// A chunk the library refuses (a type 1 to 3 chunk out of place):
		// it ends the connection itself.
		g.off = true
		return nil
	}
	g.cs = cs
	g.bodyLeft = min(cs.length-cs.recv, g.chunkSize)
	g.headLen = 0
	if g.bodyLeft == 0 {
		return g.endChunk()
	}
	return nil
}

// timestampExtended reports whether the type 0 to 2 chunk header read
// leaves its chunk stream's type 3 chunks with an extended timestamp. As
// in gortmplib, that is when the timestamp (or delta) it carries, once
// extended, is at least 0xffffff.
func (g *chunkGuard) timestampExtended() bool {
	if be24(g.head[1:4]) < 0xffffff {
		return false
	}
	ext := g.head[g.headLen-4 : g.headLen]
	return uint32(ext[0])<<24|uint32(ext[1])<<16|uint32(ext[2])<<8|uint32(ext[3]) >= 0xffffff
}

// body takes bytes of the current chunk's body.
func (g *chunkGuard) body(p []byte) {
	cs := g.cs
	if cs.typ == typeSetChunkSize && cs.recv < uint32(len(cs.payload)) {
		copy(cs.payload[cs.recv:], p)
	}
	cs.recv += uint32(len(p))
	g.bodyLeft -= uint32(len(p))
}

// endChunk closes the current chunk: a message it completes that sets
// the chunk size takes effect, or is refused.
func (g *chunkGuard) endChunk() error {
	cs := g.cs
	g.cs = nil
	if cs.recv < cs.length {
		return nil // more chunks to come
	}
	cs.recv = 0
	if cs.typ != typeSetChunkSize || cs.length != uint32(len(cs.payload)) {
		return nil // not a Set Chunk Size the library would apply
	}
	size := uint32(cs.payload[0])<<24 | uint32(cs.payload[1])<<16 | uint32(cs.payload[2])<<8 | uint32(cs.payload[3])
	if size > maxChunkSize {
		g.err = fmt.Errorf("%w: chunk size %d is above the %d allowed", ErrProtocol, size, maxChunkSize)
		return g.err
	}
	g.chunkSize = size
	return nil
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

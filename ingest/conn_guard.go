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
	// minChunkSize is the smallest chunk size a client may set, RTMP's
	// default. RTMP 1.0, 5.4.1: "The maximum chunk size SHOULD be at least
	// 128 bytes, and MUST be at least 1 byte." The library keeps each
	// chunk of a long message as an allocation of its own plus a slice
	// header, so 1-byte chunks would make a message cost some 30 times
	// its length; no encoder sets less than 128.
	minChunkSize = 128
	// handshakeLen is what a client sends before its first chunk: C0, C1
	// and C2.
	handshakeLen = 1 + 1536 + 1536
	// rtmpeVersion is the C0 of the encrypted handshake (RTMPE), whose
	// chunks the guard could not read.
	rtmpeVersion = 6
	// Message types (RTMP 1.0, 5.4 and 7.1).
	typeSetChunkSize = 1
	typeAudio        = 8
	typeVideo        = 9
)

// chunkGuard follows the chunk stream a client sends, as gortmplib's reader
// will parse it (pkg/rawmessage: chunk stream ids 2 to 63, a chunk body of
// at most the chunk size in effect), and refuses what would make the
// library hold more memory than the connection's budget allows
// (conn_guard_budget.go): a Set Chunk Size outside minChunkSize to
// maxChunkSize before the library applies it, a message longer than its
// type may be, or one that would take the bytes the library holds for the
// connection, or its unfinished messages, over their bounds. Until
// publishing is called only small messages other than audio and video
// pass. It sees the bytes when they are read from the socket, before the
// library's buffers: a refusal stops everything after the bad message's
// header, before the library allocates its body. It keeps a few dozen
// bytes of state per chunk stream and copies nothing but headers. Not
// safe for concurrent use.
type chunkGuard struct {
	skip      int    // handshake bytes still to pass
	chunkSize uint32 // in effect for the next chunk
	off       bool   // the stream is one the library refuses: stop following
	err       error  // the refusal, once made

	// published is set once the client may publish: audio, video and
	// large messages pass from then on.
	published bool
	// held is what the library holds for the connection, as the
	// streams' held add up; partial counts the messages begun in more
	// than one chunk and not finished.
	held    uint64
	partial int

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

	// multi is set while a message that takes more than one chunk is
	// unfinished; chunks counts its chunks so far, and largest is the
	// longest of them.
	multi           bool
	chunks, largest uint32
	// held is what this stream adds to chunkGuard.held.
	held uint64
	// kept is what the library keeps of the stream's past messages.
	kept fragments
}

func newChunkGuard() *chunkGuard {
	return &chunkGuard{skip: handshakeLen, chunkSize: 128}
}

// publishing lets the client publish: audio, video and messages up to
// their type's full length pass from now on.
func (g *chunkGuard) publishing() { g.published = true }

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
				return g.refuse("encrypted RTMP (RTMPE) is not supported; use rtmp:// or rtmps://")
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
	if cs.recv == 0 && g.begin(cs) != nil {
		return g.err
	}
	cs.chunks++
	cs.largest = max(cs.largest, g.bodyLeft)
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
	if g.end(cs) != nil {
		return g.err
	}
	if cs.typ != typeSetChunkSize || cs.length != uint32(len(cs.payload)) {
		return nil // not a Set Chunk Size the library would apply
	}
	size := uint32(cs.payload[0])<<24 | uint32(cs.payload[1])<<16 | uint32(cs.payload[2])<<8 | uint32(cs.payload[3])
	switch {
	case size > maxChunkSize:
		return g.refuse("chunk size %d is above the %d allowed", size, maxChunkSize)
	case size < minChunkSize:
		return g.refuse("chunk size %d is below the %d allowed", size, minChunkSize)
	}
	g.chunkSize = size
	return nil
}

// refuse makes the guard's refusal, for what format and args say.
func (g *chunkGuard) refuse(format string, args ...any) error {
	g.err = fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
	return g.err
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

package ingest

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// guardedReader passes bytes through a chunk guard in reads of at most max
// bytes, as Conn.Read does, and lets the client publish once grantAt
// bytes have passed: its reads stop there, as a publisher's stream does
// until the server has said NetStream.Publish.Start.
type guardedReader struct {
	r       io.Reader
	g       *chunkGuard
	max     int
	grantAt int
	pos     int
}

func (r *guardedReader) Read(p []byte) (int, error) {
	n := min(len(p), r.max)
	if r.pos >= r.grantAt {
		r.g.publishing()
	} else {
		n = min(n, r.grantAt-r.pos)
	}
	n, err := r.r.Read(p[:n])
	if n > 0 {
		if gerr := r.g.feed(p[:n]); gerr != nil {
			return 0, gerr
		}
	}
	r.pos += n
	return n, err
}

// readMessages reads messages from r with gortmplib's reader, as the
// server does, until an error: at the latest the end of r, as every
// message takes at least one byte.
func readMessages(r io.Reader) ([]message.Message, error) {
	bcr := bytecounter.NewReader(r)
	mr := message.NewReader(bcr, bcr, func(uint32) error { return nil })
	var out []message.Message
	for {
		m, err := mr.Read()
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// rawMessages reads data with gortmplib's raw message reader, applying
// the chunk sizes it sets as the message reader does, until an error.
// Each message the message reader returns, or fails to decode, is the
// raw message of the same index.
func rawMessages(data []byte) []*rawmessage.Message {
	bcr := bytecounter.NewReader(bytes.NewReader(data))
	r := rawmessage.NewReader(bcr, bcr, func(uint32) error { return nil })
	var out []*rawmessage.Message
	for {
		m, err := r.Read()
		if err != nil {
			return out
		}
		out = append(out, m)
		if m.Type == typeSetChunkSize && len(m.Body) == 4 {
			if r.SetChunkSize(uint32(m.Body[0])<<24|uint32(m.Body[1])<<16|uint32(m.Body[2])<<8|uint32(m.Body[3])) != nil {
				return out
			}
		}
	}
}

// breaksRule returns the index of the first message of msgs that the
// guard must never let through, with the client let publish or not: a
// chunk size out of bounds, a message longer than its type may be, audio
// or video before publish. -1 means none.
func breaksRule(msgs []*rawmessage.Message, publishing bool) int {
	g := &chunkGuard{published: publishing}
	for i, m := range msgs {
		media := m.Type == typeAudio || m.Type == typeVideo
		bad := len(m.Body) > int(g.maxMessage(m.Type)) || media && !publishing
		if m.Type == typeSetChunkSize && len(m.Body) == 4 {
			size := uint32(m.Body[0])<<24 | uint32(m.Body[1])<<16 | uint32(m.Body[2])<<8 | uint32(m.Body[3])
			bad = bad || size > maxChunkSize || size < minChunkSize
		}
		if bad {
			return i
		}
	}
	return -1
}

// refusedUnread reports whether g refused a message at its first chunk
// header that the reader, without the guard, never completes in raw: one
// of the same chunk stream, type and length.
func refusedUnread(g *chunkGuard, raw []*rawmessage.Message) bool {
	if g.cs == nil {
		return false
	}
	id := byte(0)
	for i := range g.streams {
		if &g.streams[i] == g.cs {
			id = byte(i)
		}
	}
	for _, m := range raw {
		if m.ChunkStreamID == id && m.Type == g.cs.typ && len(m.Body) == int(g.cs.length) {
			return false
		}
	}
	return true
}

// FuzzChunkGuard checks the guard against gortmplib's reader on arbitrary
// chunk streams, with the client let publish after grantAt bytes. With
// the guard, the reader must read the same messages as without it, unless
// the guard refused. A refusal may cut the stream short, but only one that
// without the guard goes on to break a rule the guard enforces on single
// messages (breaksRule; audio or video at all, if there are bytes before
// grantAt), to an error of the reader's (the guard judges whole reads,
// which may hold what the reader would have stopped before), or one of
// the connection's budget (errOverBudget), whose arithmetic TestChunkGuard
// checks; or one of a message refused at its header that the reader never
// completes. Never may the reader take a message that breaks a rule through
// the guard, and the guard's totals always add up.
func FuzzChunkGuard(f *testing.F) {
	f.Add(recordPublish(f), uint16(4096), uint32(0))
	for _, tc := range guardCases(f) {
		// Those of a few MB, big frames, would only slow the fuzzer down.
		if len(tc.pre)+len(tc.post) <= 256<<10 {
			f.Add(append(bytes.Clone(tc.pre), tc.post...), uint16(1000), uint32(len(tc.pre)))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, readMax uint16, grantAt uint32) {
		plain, plainErr := readMessages(bytes.NewReader(data))
		g := newChunkGuard()
		g.skip = 0
		guarded, guardedErr := readMessages(&guardedReader{r: bytes.NewReader(data), g: g, max: 1 + int(readMax), grantAt: int(grantAt)})
		if err := guardBooks(g); err != nil {
			t.Fatal(err)
		}
		raw := rawMessages(data)

		if len(guarded) > len(plain) || len(guarded) > 0 && !reflect.DeepEqual(guarded, plain[:len(guarded)]) {
			t.Fatalf("with the guard the reader read %d messages, not a prefix of the %d without", len(guarded), len(plain))
		}
		// Some of the messages let through may have come before the
		// client could publish, but audio or video never if it could not.
		if i := breaksRule(raw[:len(guarded)], int(grantAt) < len(data)); i >= 0 {
			t.Fatalf("the reader took message %d (type %d, %d bytes) through the guard", i, raw[i].Type, len(raw[i].Body))
		}
		if !errors.Is(guardedErr, ErrProtocol) {
			if len(guarded) != len(plain) || guardedErr.Error() != plainErr.Error() {
				t.Fatalf("with the guard: %d messages, %v; without: %d, %v", len(guarded), guardedErr, len(plain), plainErr)
			}
			return
		}
		cleanEnd := errors.Is(plainErr, io.EOF) || errors.Is(plainErr, io.ErrUnexpectedEOF)
		broken := breaksRule(raw[:min(len(raw), len(plain)+1)], grantAt == 0) >= 0
		if !broken && cleanEnd && !refusedUnread(g, raw) && !errors.Is(guardedErr, errOverBudget) {
			t.Fatalf("the guard refused (%v) a stream the reader reads to its end (%v) with no message out of bounds", guardedErr, plainErr)
		}
	})
}

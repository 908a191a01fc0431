package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// chunkStreamOf writes msgs with gortmplib's own writer, applying the
// chunk sizes they set, and returns the bytes: what a client sends after
// its handshake.
func chunkStreamOf(t testing.TB, msgs ...*rawmessage.Message) []byte {
	t.Helper()
	return chunkStreamAt(t, 128, msgs...)
}

// chunkStreamAt is chunkStreamOf for a client whose chunk size is
// already size.
func chunkStreamAt(t testing.TB, size uint32, msgs ...*rawmessage.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(io.Discard), false)
	w.SetChunkSize(size)
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		if m.Type == typeSetChunkSize {
			w.SetChunkSize(uint32(m.Body[0])<<24 | uint32(m.Body[1])<<16 | uint32(m.Body[2])<<8 | uint32(m.Body[3]))
		}
	}
	return buf.Bytes()
}

func setChunkSize(v uint32) *rawmessage.Message {
	return &rawmessage.Message{ChunkStreamID: 2, Type: typeSetChunkSize, Body: []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}}
}

// media is a message of n bytes on chunk stream cs at ms milliseconds.
func media(cs byte, typ uint8, ms int64, n int) *rawmessage.Message {
	body := make([]byte, n)
	for i := range min(n, 4096) { // the rest of a big frame does not matter
		body[i] = byte(i)
	}
	return &rawmessage.Message{ChunkStreamID: cs, Type: typ, MessageStreamID: 1, Timestamp: time.Duration(ms) * time.Millisecond, Body: body}
}

// command is an AMF0 command message of n bytes on chunk stream cs (the
// guard looks at no body but Set Chunk Size's).
func command(cs byte, n int) *rawmessage.Message { return media(cs, 20, 0, n) }

// firstChunk is the first chunk of a message of length bytes of type typ
// on chunk stream cs, with body bytes of it: a type 0 header, then the
// body. The rest of the message is not sent.
func firstChunk(cs byte, typ uint8, length, body int) []byte {
	return append([]byte{cs, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ, 1, 0, 0, 0}, make([]byte, body)...)
}

// feedInPieces feeds b to g in pieces of random sizes, as reads return
// them, and returns the first error.
func feedInPieces(g *chunkGuard, b []byte, rnd *rand.Rand) error {
	for len(b) > 0 {
		n := min(len(b), 1+rnd.IntN(300))
		if rnd.IntN(4) == 0 {
			n = len(b)
		}
		if err := g.feed(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// guardCase is a client's chunk stream after its handshake: pre before
// the server lets it publish, post after, and how the guard ends it.
type guardCase struct {
	name      string
	pre, post []byte
	size      uint32 // the chunk size at the end
	err       string // the refusal, if any
}

// guardCases are TestChunkGuard's cases and FuzzChunkGuard's seeds.
func guardCases(t testing.TB) []guardCase {
	const ext = 0x1000000 // ms: timestamps that need the extended field
	interleaved := []*rawmessage.Message{
		media(6, 9, 0, 5000), media(4, 8, 0, 300), media(6, 9, 33, 0), media(4, 8, 21, 1),
		media(6, 9, 66, 128), media(4, 8, 42, 127), media(6, 9, 100, 129), media(3, 20, 0, 200),
	}
	extended := []*rawmessage.Message{
		media(6, 9, ext, 1000), media(6, 9, ext+33, 1000), media(4, 8, ext, 700), media(6, 9, ext+66, 300),
		media(6, 9, 2*ext, 900), media(4, 8, 0, 400), media(6, 9, 10, 400),
	}
	cat := func(parts ...[]*rawmessage.Message) (out []*rawmessage.Message) {
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := func(m ...*rawmessage.Message) []*rawmessage.Message { return m }
	of := func(msgs ...[]*rawmessage.Message) []byte { return chunkStreamOf(t, cat(msgs...)...) }
	at := func(size uint32, msgs ...[]*rawmessage.Message) []byte {
		return chunkStreamAt(t, size, cat(msgs...)...)
	}
	// What encoders send before they may publish: connect, releaseStream,
	// FCPublish, createStream, publish.
	handshake := one(command(3, 700), command(3, 150), command(3, 150), command(3, 120), command(3, 130))
	// A stream of big frames: keyframes of a 4K stream (a few MB each),
	// each smaller than the one before, P-frames and audio between.
	var frames []*rawmessage.Message
	for i := range 4 {
		frames = append(frames, media(6, 9, int64(i*1000), 6<<20-i*100<<10))
		for j := range 3 {
			frames = append(frames, media(6, 9, int64(i*1000+j*33), 20000), media(4, 8, int64(i*1000+j*21), 300))
		}
	}
	// Nine commands begun, each in one chunk of the two it takes.
	var nine []byte
	for cs := range byte(9) {
		nine = append(nine, firstChunk(3+cs, 20, 5000, 4096)...)
	}
	return []guardCase{
		{"default chunk size", nil, of(interleaved), 128, ""},
		{"4096, as OBS sets", nil, of(one(setChunkSize(4096)), interleaved), 4096, ""},
		{"the largest allowed", nil, of(one(setChunkSize(maxChunkSize)), interleaved, extended), maxChunkSize, ""},
		{"extended timestamps", nil, of(extended, one(setChunkSize(1000)), extended), 1000, ""},
		{"changes mid-stream", nil, of(interleaved, one(setChunkSize(60000)), extended, one(setChunkSize(256)), interleaved), 256, ""},
		{"one above", nil, of(interleaved, one(setChunkSize(maxChunkSize+1))), 0, "chunk size 65537 is above"},
		{"10 MB", nil, of(one(setChunkSize(4096), setChunkSize(10<<20)), interleaved), 0, "chunk size 10485760"},
		{"refused in small chunks", nil, of(one(setChunkSize(minChunkSize)), extended[:2], one(setChunkSize(1<<31))), 0, "chunk size 2147483648"},
		{"one below", of(one(setChunkSize(minChunkSize - 1))), nil, 0, "chunk size 127 is below"},
		{"1 byte", of(handshake, one(setChunkSize(1))), nil, 0, "chunk size 1 is below"},

		// Issue #18 A: what a connection may make the library hold.
		{"a publish as OBS sends it", of(one(setChunkSize(4096)), handshake),
			at(4096, one(media(4, 18, 0, 400), media(6, 9, 0, 50), media(4, 8, 0, 7)), frames), 4096, ""},
		{"a publish at the default chunk size, as ffmpeg's", of(handshake),
			of(one(media(4, 18, 0, 400), media(6, 9, 0, 4<<20), media(4, 8, 0, 300), media(6, 9, 33, 30000))), 128, ""},
		{"a frame of 8 MiB", of(one(setChunkSize(maxChunkSize))), at(maxChunkSize, one(media(6, 9, 0, maxMediaMessage))), maxChunkSize, ""},
		{"a frame above 8 MiB", nil, of(one(media(6, 9, 0, maxMediaMessage+1))), 0, "message type 9 of 8388609 bytes, above the 8388608"},
		{"the chunk size changing between big frames", nil,
			of(one(setChunkSize(4096), media(6, 9, 0, 2<<20), setChunkSize(maxChunkSize), media(6, 9, 40, 2<<20), media(6, 9, 80, 3<<20))), maxChunkSize, ""},
		{"a command of 16 KiB", of(one(setChunkSize(4096), command(3, maxPendingMessage))), nil, 4096, ""},
		{"a command above 16 KiB", of(one(setChunkSize(4096), command(3, maxPendingMessage+1))), nil, 0,
			"message type 20 of 16385 bytes, above the 16384"},
		{"a command of 10 MiB", append(of(one(setChunkSize(maxChunkSize))), firstChunk(3, 20, 10<<20, maxChunkSize)...), nil, 0,
			"message type 20 of 10485760 bytes, above the 16384"},
		{"metadata of 64 KiB, publishing", of(handshake), of(one(media(4, 18, 0, maxControlMessage))), 128, ""},
		{"a command above 64 KiB, publishing", of(handshake), of(one(command(3, maxControlMessage+1))), 0, "message type 20 of 65537 bytes"},
		{"video before publish", of(handshake, one(media(6, 9, 0, 100))), nil, 0, "audio or video (message type 9) before publish"},
		{"audio before publish", of(one(media(4, 8, 0, 10))), nil, 0, "audio or video (message type 8) before publish"},
		{"nine messages unfinished", append(of(one(setChunkSize(4096))), nine...), nil, 0, "more than 8 messages unfinished"},
		{"unfinished commands", append(of(one(setChunkSize(4096))), bytes.Join([][]byte{
			firstChunk(3, 20, 15000, 4096), firstChunk(4, 20, 15000, 4096), firstChunk(5, 20, 15000, 4096),
			firstChunk(6, 20, 15000, 4096), firstChunk(7, 20, 15000, 4096)}, nil)...), nil, 0,
			"75000 bytes held for unfinished and past messages, above the 65536"},
		{"unfinished frames", nil, append(of(one(setChunkSize(maxChunkSize))), bytes.Join([][]byte{
			firstChunk(6, 9, 5<<20, maxChunkSize), firstChunk(7, 9, 5<<20, maxChunkSize)}, nil)...), 0,
			"10485760 bytes held for unfinished and past messages, above the 9437184"},
		// gortmplib keeps the chunks of a stream's longest message.
		{"what finished commands leave", of(one(setChunkSize(4096), command(3, 15000), command(4, 15000), command(5, 15000),
			command(6, 15000), command(7, 15000))), nil, 0, "80536 bytes held"},
	}
}

// TestChunkGuard follows chunk streams written by gortmplib's writer: it
// must end each at a chunk boundary with the chunk size the writer ended
// with, however the bytes are split, and refuse exactly the chunk sizes
// outside minChunkSize to maxChunkSize and the messages that break the
// connection's budget.
func TestChunkGuard(t *testing.T) {
	for _, tc := range guardCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			seeds := uint64(10)
			if len(tc.pre)+len(tc.post) > 1<<20 {
				seeds = 2 // cases of big frames: the splits matter less than the time
			}
			for seed := range seeds {
				g := newChunkGuard()
				g.skip = 0
				rnd := rand.New(rand.NewPCG(seed, 1))
				err := feedInPieces(g, tc.pre, rnd)
				if err == nil {
					g.publishing()
					err = feedInPieces(g, tc.post, rnd)
				}
				if berr := guardBooks(g); berr != nil {
					t.Fatalf("seed %d: %v", seed, berr)
				}
				if tc.err != "" {
					if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("seed %d: err %v, want a protocol error with %q", seed, err, tc.err)
					}
					if again := g.feed([]byte{0}); again == nil {
						t.Fatal("the guard let bytes through after refusing")
					}
					continue
				}
				if err != nil || g.off || g.cs != nil || g.headLen != 0 || g.chunkSize != tc.size || g.partial != 0 {
					t.Fatalf("seed %d: err %v, off %v, mid-chunk %v, %d header bytes, chunk size %d (want %d), %d messages unfinished",
						seed, err, g.off, g.cs != nil, g.headLen, g.chunkSize, tc.size, g.partial)
				}
			}
		})
	}
}

// guardBooks checks that g's totals are its chunk streams' sums.
func guardBooks(g *chunkGuard) error {
	var held uint64
	var partial int
	for i := range g.streams {
		cs := &g.streams[i]
		held += cs.held
		if cs.multi {
			partial++
		}
	}
	if g.err == nil && (held != g.held || partial != g.partial) {
		return fmt.Errorf("the guard counts %d bytes held and %d messages unfinished; its streams, %d and %d", g.held, g.partial, held, partial)
	}
	return nil
}

// The handshake passes untouched, except the encrypted one, whose chunks
// the guard could not read.
func TestChunkGuardHandshake(t *testing.T) {
	hs := make([]byte, handshakeLen)
	hs[0] = 3
	hs[1], hs[handshakeLen-1] = 1, 1 // arbitrary C1 and C2 bytes
	g := newChunkGuard()
	if err := g.feed(append(hs, chunkStreamOf(t, setChunkSize(5000))...)); err != nil || g.chunkSize != 5000 {
		t.Fatalf("plain handshake: err %v, chunk size %d", err, g.chunkSize)
	}
	hs[0] = rtmpeVersion
	if err := newChunkGuard().feed(hs[:1]); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "RTMPE") {
		t.Fatalf("encrypted handshake: err %v, want a protocol error naming RTMPE", err)
	}
}

// TestFragments: the bound of what gortmplib keeps of a chunk stream's
// past messages follows its slice of chunks, each message overwriting its
// first entries.
func TestFragments(t *testing.T) {
	type msg struct{ n, size uint32 }
	for _, tc := range []struct {
		name string
		msgs []msg
		want uint64 // bytes(0)
		from uint32 // and bytes(from)
		tail uint64
	}{
		{"none", nil, 0, 0, 0},
		{"one", []msg{{10, 4096}}, 10 * 4096, 4, 6 * 4096},
		{"a shorter one after", []msg{{10, 4096}, {3, 4096}}, 10 * 4096, 3, 7 * 4096},
		{"a longer one after", []msg{{3, 4096}, {10, 4096}}, 10 * 4096, 10, 0},
		{"larger chunks over smaller", []msg{{512, 128}, {2, 32768}}, 2*32768 + 510*128, 2, 510 * 128},
		{"halving", []msg{{512, 128}, {256, 256}, {128, 512}, {64, 1024}}, 64*1024 + 64*512 + 128*256 + 256*128, 0, 64*1024 + 64*512 + 128*256 + 256*128},
		// Five sizes in four runs: the last two merge into the larger.
		{"more runs than kept", []msg{{5, 1}, {4, 2}, {3, 3}, {2, 4}, {1, 5}}, 5 + 4 + 3 + 2*2, 1, 4 + 3 + 2*2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fragments
			for _, m := range tc.msgs {
				f.overwrite(m.n, m.size)
			}
			if got := f.bytes(0); got != tc.want {
				t.Errorf("bytes(0) = %d, want %d", got, tc.want)
			}
			if got := f.bytes(tc.from); got != tc.tail {
				t.Errorf("bytes(%d) = %d, want %d", tc.from, got, tc.tail)
			}
		})
	}
}

package ingest

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/logtest"
)

// chunkStreamOf writes msgs with gortmplib's own writer, applying the
// chunk sizes they set, and returns the bytes: what a client sends after
// its handshake.
func chunkStreamOf(t testing.TB, msgs ...*rawmessage.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(io.Discard), false)
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
	for i := range body {
		body[i] = byte(i)
	}
	return &rawmessage.Message{ChunkStreamID: cs, Type: typ, MessageStreamID: 1, Timestamp: time.Duration(ms) * time.Millisecond, Body: body}
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

// TestChunkGuard follows chunk streams written by gortmplib's writer: it
// must end each at a chunk boundary with the chunk size the writer ended
// with, however the bytes are split, and refuse exactly the chunk sizes
// above maxChunkSize.
func TestChunkGuard(t *testing.T) {
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
	for _, tc := range []struct {
		name string
		msgs []*rawmessage.Message
		size uint32 // the chunk size at the end
		err  string // the refusal, if any
	}{
		{"default chunk size", interleaved, 128, ""},
		{"4096, as OBS sets", cat([]*rawmessage.Message{setChunkSize(4096)}, interleaved), 4096, ""},
		{"the largest allowed", cat([]*rawmessage.Message{setChunkSize(maxChunkSize)}, interleaved, extended), maxChunkSize, ""},
		{"extended timestamps", cat(extended, []*rawmessage.Message{setChunkSize(1000)}, extended), 1000, ""},
		{"set chunk size split over chunks", cat([]*rawmessage.Message{setChunkSize(1)}, interleaved[:3], []*rawmessage.Message{setChunkSize(3000)}, interleaved), 3000, ""},
		{"changes mid-stream", cat(interleaved, []*rawmessage.Message{setChunkSize(60000)}, extended, []*rawmessage.Message{setChunkSize(256)}, interleaved), 256, ""},
		{"one above", cat(interleaved, []*rawmessage.Message{setChunkSize(maxChunkSize + 1)}), 0, "chunk size 65537 is above"},
		{"10 MB", cat([]*rawmessage.Message{setChunkSize(4096)}, []*rawmessage.Message{setChunkSize(10 << 20)}, interleaved), 0, "chunk size 10485760"},
		{"refused in small chunks", cat([]*rawmessage.Message{setChunkSize(1)}, extended[:2], []*rawmessage.Message{setChunkSize(1 << 31)}), 0, "chunk size 2147483648"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := chunkStreamOf(t, tc.msgs...)
			for seed := range uint64(20) {
				g := newChunkGuard()
				g.skip = 0
				err := feedInPieces(g, stream, rand.New(rand.NewPCG(seed, 1)))
				if tc.err != "" {
					if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("seed %d: err %v, want a protocol error with %q", seed, err, tc.err)
					}
					if again := g.feed([]byte{0}); again == nil {
						t.Fatal("the guard let bytes through after refusing")
					}
					continue
				}
				if err != nil || g.off || g.cs != nil || g.headLen != 0 || g.chunkSize != tc.size {
					t.Fatalf("seed %d: err %v, off %v, mid-chunk %v, %d header bytes, chunk size %d (want %d)",
						seed, err, g.off, g.cs != nil, g.headLen, g.chunkSize, tc.size)
				}
			}
		})
	}
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

// guardedReader passes bytes through a chunk guard in reads of at most max
// bytes, as Conn.Read does.
type guardedReader struct {
	r   io.Reader
	g   *chunkGuard
	max int
}

func (r *guardedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p[:min(len(p), r.max)])
	if n > 0 {
		if gerr := r.g.feed(p[:n]); gerr != nil {
			return 0, gerr
		}
	}
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

// FuzzChunkGuard checks the guard against gortmplib's reader on arbitrary
// chunk streams. With the guard, the reader must read the same messages as
// without it, unless the guard refused. A refusal may cut the stream
// short, but only one that without the guard goes on to a chunk size above
// maxChunkSize or to an error of the reader's (the guard judges whole
// reads, which may hold what the reader would have stopped before). Never
// may the reader take a chunk size above maxChunkSize through the guard.
func FuzzChunkGuard(f *testing.F) {
	f.Add(recordPublish(f), uint16(4096))
	f.Add(chunkStreamOf(f, setChunkSize(1), media(6, 9, 0x1000000, 300), setChunkSize(70000), media(4, 8, 0, 100000)), uint16(7))
	f.Add(chunkStreamOf(f, media(6, 9, 0, 300), setChunkSize(200), media(6, 9, 0xfffffe, 600), media(6, 9, 0xffffff, 600)), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, readMax uint16) {
		plain, plainErr := readMessages(bytes.NewReader(data))
		g := newChunkGuard()
		g.skip = 0
		guarded, guardedErr := readMessages(&guardedReader{r: bytes.NewReader(data), g: g, max: 1 + int(readMax)})

		if len(guarded) > len(plain) || len(guarded) > 0 && !reflect.DeepEqual(guarded, plain[:len(guarded)]) {
			t.Fatalf("with the guard the reader read %d messages, not a prefix of the %d without", len(guarded), len(plain))
		}
		bigAt := -1 // the first chunk size above the limit the reader took
		for i, m := range plain {
			if s, ok := m.(*message.SetChunkSize); ok && s.Value > maxChunkSize {
				bigAt = i
				break
			}
		}
		if !errors.Is(guardedErr, ErrProtocol) {
			if bigAt >= 0 {
				t.Fatalf("the reader took chunk size %d through the guard", plain[bigAt].(*message.SetChunkSize).Value)
			}
			if len(guarded) != len(plain) || guardedErr.Error() != plainErr.Error() {
				t.Fatalf("with the guard: %d messages, %v; without: %d, %v", len(guarded), guardedErr, len(plain), plainErr)
			}
			return
		}
		cleanEnd := errors.Is(plainErr, io.EOF) || errors.Is(plainErr, io.ErrUnexpectedEOF)
		if bigAt < 0 && cleanEnd {
			t.Fatalf("the guard refused (%v) a stream the reader reads to its end (%v) with no chunk size above %d",
				guardedErr, plainErr, maxChunkSize)
		}
	})
}

// TestGuardOnConnection: over a real connection, a client that sets a
// 10 MB chunk size and announces a 10 MB message is cut off at once with a
// log line and a metric, before the server allocates the chunk; so is a
// client that starts the encrypted handshake.
func TestGuardOnConnection(t *testing.T) {
	huge := chunkStreamOf(t, setChunkSize(4096), setChunkSize(10<<20))
	// A type 0 chunk header on stream 6: timestamp 0, length 10 MB, video.
	huge = append(huge, 6, 0, 0, 0, 0xa0, 0, 0, 9, 1, 0, 0, 0)
	for _, tc := range []struct {
		name      string
		handshake bool // a plain handshake first
		send      []byte
		want      string
	}{
		{"10 MB chunks", true, huge, "chunk size 10485760 is above"},
		{"RTMPE", false, append([]byte{rtmpeVersion}, make([]byte, 1536)...), "RTMPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := logtest.New(64)
			reg := prometheus.NewRegistry()
			_, base := startGated(t, Config{ReadTimeout: time.Minute, Logger: slog.New(events), Registerer: reg})
			nc, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/"))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.handshake {
				if _, _, err := handshake.DoClient(nc, false, false); err != nil {
					t.Fatal(err)
				}
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := nc.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the server did not close the connection: %v", err)
			}
			msg := events.Await(t, "protocol violation")
			runtime.ReadMemStats(&after)
			if !strings.Contains(msg, "protocol violation") {
				t.Errorf("logged %q", msg)
			}
			if got := metricValue(t, reg, "live_ingest_refused_total", "reason", "protocol"); got != 1 {
				t.Errorf("refused{reason=protocol} = %v, want 1", got)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Errorf("the server allocated %d MB for the connection", grew>>20)
			}
		})
	}
}

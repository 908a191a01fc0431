package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/publisher"
)

// dialRTMP connects to the server of base (an rtmp:// URL's prefix) and
// shakes hands as a client, with a deadline of 20 s for all the rest.
func dialRTMP(t *testing.T, base string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, _, err := handshake.DoClient(nc, false, false); err != nil {
		t.Fatal(err)
	}
	return nc
}

// awaitClosed reads nc until the server closes it, failing t if it does
// not before nc's deadline.
func awaitClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the server did not close the connection: %v", err)
	}
}

// TestGuardOnConnection: over a real connection, a client that breaks a
// rule of the guard is cut off at once with a log line and a metric,
// before the server allocates what the rule protects: one that sets a
// 10 MB chunk size, announces a 10 MiB command (issue #18 A's first
// message), sends video before publishing, or starts the encrypted
// handshake.
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
		{"a 10 MiB command", true, append(chunkStreamOf(t, setChunkSize(maxChunkSize)), firstChunk(3, 20, 10<<20, maxChunkSize)...),
			"message type 20 of 10485760 bytes"},
		{"video before publish", true, chunkStreamOf(t, command(3, 300), media(6, 9, 0, 1000)), "audio or video (message type 9) before publish"},
		{"RTMPE", false, append([]byte{rtmpeVersion}, make([]byte, 1536)...), "RTMPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := logtest.New(64, "reason")
			reg := prometheus.NewRegistry()
			_, base := startGated(t, Config{ReadTimeout: time.Minute, Logger: slog.New(events), Registerer: reg})
			var nc net.Conn
			if tc.handshake {
				nc = dialRTMP(t, base)
			} else {
				var err error
				if nc, err = net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(base, "rtmp://"), "/live/")); err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := nc.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			awaitClosed(t, nc)
			msg := events.Await(t, "protocol violation")
			runtime.ReadMemStats(&after)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("logged %q, want the reason %q", msg, tc.want)
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

// sendBigMessages is issue #18 A's attack, after the handshake: a chunk
// size of 64 KiB, then on each chunk stream from 3 to 63 a 10 MiB AMF0
// command announced and chunks chunks of it sent (the probe sent 159,
// keeping each a chunk short of complete). It stops at the first write
// the server refuses.
func sendBigMessages(nc net.Conn, chunks int) error {
	// Set Chunk Size 65536, on chunk stream 2.
	if _, err := nc.Write([]byte{2, 0, 0, 0, 0, 0, 4, typeSetChunkSize, 0, 0, 0, 0, 0, 1, 0, 0}); err != nil {
		return err
	}
	body := make([]byte, 1+maxChunkSize)
	for cs := byte(3); cs <= 63; cs++ {
		if _, err := nc.Write(firstChunk(cs, 20, 10<<20, maxChunkSize)); err != nil {
			return err
		}
		body[0] = 0xc0 | cs // a type 3 chunk: the message goes on
		for range chunks - 1 {
			if _, err := nc.Write(body); err != nil {
				return err
			}
		}
	}
	return nil
}

// heapInUse returns the bytes of heap in use once the garbage is
// collected and returned.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestBigMessageAttack replays issue #18 A with attackers connections at
// once: each is dropped at its first big message, counted and logged, and
// the server holds nothing of it, while the attack goes on and after it;
// a publisher publishes meanwhile and after. Without the guard's budget
// each connection would make the server hold 61 MiB here (61 chunk
// streams times the 16 chunks of 64 KiB sent), until its timeout.
func TestBigMessageAttack(t *testing.T) {
	const attackers, chunks = 8, 16
	events := logtest.New(64)
	reg := prometheus.NewRegistry()
	h, base := startGated(t, Config{Logger: slog.New(events), Registerer: reg, MaxPendingPerAddr: -1})
	h.release()
	clip := clipLoadDemo(t)
	publish := func(name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return publisher.Publish(ctx, publisher.Config{URL: base + name, Clip: clip, Loops: 1, Speed: -1})
	}
	before := heapInUse()

	var sent, closed sync.WaitGroup
	sent.Add(attackers)
	closed.Add(attackers)
	for range attackers {
		nc := dialRTMP(t, base)
		go func() {
			defer closed.Done()
			sendBigMessages(nc, chunks) // the server refusing makes it fail
			sent.Done()
			awaitClosed(t, nc)
		}()
	}
	during := make(chan error, 1)
	go func() { during <- publish("during") }()
	sent.Wait()
	// Every attacker has sent what it could: what the server holds of
	// it now, it would hold until the connection timed out.
	held := int64(heapInUse()) - int64(before)
	closed.Wait()
	if err := <-during; err != nil {
		t.Errorf("publishing during the attack: %v", err)
	}
	if err := publish("after"); err != nil {
		t.Errorf("publishing after the attack: %v", err)
	}
	for range 2 {
		if name := await(t, h.published); name != "during" && name != "after" {
			t.Errorf("published %q", name)
		}
	}
	left := int64(heapInUse()) - int64(before)
	t.Logf("heap in use: %+d MB while the attackers were connected, %+d MB after", held>>20, left>>20)
	const margin = 24 << 20
	if held > margin || left > margin {
		t.Errorf("heap in use grew by %d MB during the attack, %d MB after it (at most %d)", held>>20, left>>20, margin>>20)
	}
	if got := metricValue(t, reg, "live_ingest_refused_total", "reason", "protocol"); got != attackers {
		t.Errorf("refused{reason=protocol} = %v, want %d", got, attackers)
	}
	events.Await(t, "protocol violation")
}

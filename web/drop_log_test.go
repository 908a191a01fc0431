package web

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer for a logger used by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// TestDropLog: one line per kind and reason a minute, counting the
// refusals since the previous one.
func TestDropLog(t *testing.T) {
	var out lockedBuffer
	d := newDropLog(slog.New(slog.NewTextHandler(&out, nil)), time.Minute)
	t0 := time.Unix(1_000_000, 0)
	for i := range 100 {
		d.note("beacon", "session_forged", "bad signature", t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	d.note("beacon", "session_expired", "expired", t0)
	d.note("session request", "session_forged", strings.Repeat("x", 1000), t0)
	d.note("beacon", "session_forged", "bad signature", t0.Add(61*time.Second))
	want := []string{
		`reason=session_forged count=1 example="bad signature"`,
		`reason=session_expired count=1 example=expired`,
		`msg="qoe session request refused" reason=session_forged count=1 example=` + strings.Repeat("x", maxDropMsg),
		`reason=session_forged count=100 example="bad signature"`,
	}
	got := out.lines()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasSuffix(got[i], w) {
			t.Errorf("line %d: %s\nwant it to end with %s", i, got[i], w)
		}
	}
}

// TestBeaconFloodLogsLittle: 5000 forged beacons from 100 addresses make
// one log line.
func TestBeaconFloodLogsLittle(t *testing.T) {
	var out lockedBuffer
	s := testServer(t, Config{Logger: slog.New(slog.NewTextHandler(&out, nil))})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			addr := "198.51.100." + strconv.Itoa(i)
			for range 50 {
				postFrom(s, addr, "/api/qoe", `{"stream":"demo","session":"`+strings.Repeat("A", tokenChars)+`","event":"stall"}`)
			}
		})
	}
	wg.Wait()
	if got := out.lines(); len(got) != 1 || !strings.Contains(got[0], "reason=session_forged count=1 ") {
		t.Errorf("log:\n%s", strings.Join(got, "\n"))
	}
	if n := count(t, s.metrics.rejected.WithLabelValues("session_forged")); n != 5000 {
		t.Errorf("%v refusals counted, want 5000", n)
	}
}

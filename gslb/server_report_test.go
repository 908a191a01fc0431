package gslb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golivestream/live/internal/logtest"
)

// rawSession opens a report session on a bare TCP connection, so that the
// test can cut it like a dying process.
type rawSession struct {
	conn net.Conn
	acks *bufio.Reader
}

func openRawSession(t *testing.T, base string) *rawSession {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/report HTTP/1.1\r\nHost: gslb\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", SessionContentType)
	s := &rawSession{conn: conn, acks: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(s.acks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("session refused: %s", resp.Status)
	}
	return s
}

// send writes one line in a chunk and returns the acknowledgement ("" at
// the end of the response).
func (s *rawSession) send(t *testing.T, line string) string {
	t.Helper()
	line += "\n"
	fmt.Fprintf(s.conn, "%x\r\n%s\r\n", len(line), line)
	return s.ack(t)
}

func (s *rawSession) ack(t *testing.T) string {
	t.Helper()
	// The response is chunked too: skip the chunk sizes.
	for {
		l, err := s.acks.ReadString('\n')
		if err == io.EOF || l == "0\r\n" {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "{") {
			return l
		}
	}
}

func TestReportSession(t *testing.T) {
	const rep = `{"name": "pop-a", "url": "http://a.example", "viewers": 7}`
	tests := []struct {
		name string
		// end ends the session after one good report and returns the
		// reason the removal logs.
		end func(t *testing.T, s *rawSession) string
	}{
		{"connection cut, as by a killed process", func(t *testing.T, s *rawSession) string {
			s.conn.Close()
			return "report session ended: unexpected EOF"
		}},
		{"body ended by the PoP", func(t *testing.T, s *rawSession) string {
			fmt.Fprint(s.conn, "0\r\n\r\n")
			if a := s.ack(t); a != "" {
				t.Errorf("after the body's end: %q", a)
			}
			return "report session ended: closed by the PoP"
		}},
		{"invalid report", func(t *testing.T, s *rawSession) string {
			if a := s.send(t, `{"name": "pop-a"}`); !strings.Contains(a, `"error"`) {
				t.Errorf("invalid report acknowledged: %q", a)
			}
			return "report session ended: invalid report"
		}},
		{"report too long", func(t *testing.T, s *rawSession) string {
			if a := s.send(t, strings.Repeat(" ", MaxReportBytes+10)+rep); !strings.Contains(a, "longer than") {
				t.Errorf("long report acknowledged: %q", a)
			}
			return "report session ended: report too long"
		}},
		{"silence past the timeout", func(t *testing.T, s *rawSession) string {
			if a := s.ack(t); a != "" { // the server ends the response
				t.Errorf("after the timeout: %q", a)
			}
			return "report session ended: no report within 300ms"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := logtest.New(100, "pop", "reason")
			// Timeout 3 × 100 ms.
			_, b, hs := newTestServer(t, Config{Interval: 100 * time.Millisecond, Logger: slog.New(logs)}, ServerConfig{})
			s := openRawSession(t, hs.URL)
			if a := s.send(t, rep); a != `{"ok":true}` {
				t.Fatalf("ack %q", a)
			}
			if pops := b.PoPs(); len(pops) != 1 || pops[0].Viewers != 7 {
				t.Fatalf("PoPs %+v", pops)
			}
			why := tt.end(t, s)
			if got := logs.Await(t, "pop removed"); !strings.Contains(got, why) {
				t.Errorf("removed: %q, want reason %q", got, why)
			}
			if pops := b.PoPs(); len(pops) != 0 {
				t.Errorf("PoPs %+v", pops)
			}
		})
	}
}

// TestReportSessionShutdown: CloseSessions ends the sessions in progress
// and refuses new ones, so that a shutdown does not wait for them.
func TestReportSessionShutdown(t *testing.T) {
	logs := logtest.New(100, "pop", "reason")
	s, _, hs := newTestServer(t, Config{Logger: slog.New(logs)}, ServerConfig{})
	rs := openRawSession(t, hs.URL)
	if a := rs.send(t, `{"name": "pop-a", "url": "http://a.example"}`); a != `{"ok":true}` {
		t.Fatalf("ack %q", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for the session: %v", err)
	}
	logs.Await(t, "pop removed")
	if s.sessions.count() != 0 {
		t.Error("a session is still open")
	}
}

// TestReporter: a Reporter against a real Server reports its load, drains
// on request, and its PoP is removed when it stops.
func TestReporter(t *testing.T) {
	logs := logtest.New(100, "pop", "reason")
	_, b, hs := newTestServer(t, Config{Logger: slog.New(logs)}, ServerConfig{ControlToken: "tok"})
	var served int64
	r, err := NewReporter(ReporterConfig{
		URL: hs.URL, Name: "pop-a", PublicURL: "http://a.example:8081",
		CapacityViewers: 100, CapacityBPS: 1e9, Interval: time.Hour, Token: "tok",
		Load: func() (int64, int64) { served += 1000; return 5, served },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	logs.Await(t, "pop joined pop=pop-a")
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	if err := r.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	pops := b.PoPs()
	if len(pops) != 1 || !pops[0].Draining || pops[0].Viewers != 5 || pops[0].URL != "http://a.example:8081" || pops[0].CapacityViewers != 100 {
		t.Fatalf("after Drain: %+v", pops)
	}
	if rt := b.Assign(inTen); rt.PoP != "" {
		t.Errorf("a draining PoP got a viewer: %+v", rt)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	logs.Await(t, "pop removed pop=pop-a reason=report session ended: closed by the PoP")
}

// TestReporterReconnects: when the balancer ends a session, the Reporter
// opens another and goes on reporting.
func TestReporterReconnects(t *testing.T) {
	sessions := make(chan int32, 10)
	var n atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := n.Add(1)
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(200)
		rc.Flush()
		line, err := bufio.NewReader(r.Body).ReadString('\n')
		if err != nil || !strings.Contains(line, `"name":"pop-a"`) {
			t.Errorf("report %q: %v", line, err)
			return
		}
		io.WriteString(w, `{"ok":true}`+"\n")
		rc.Flush()
		sessions <- id // and end the session
	}))
	defer hs.Close()
	r, err := NewReporter(ReporterConfig{
		URL: hs.URL, Name: "pop-a", PublicURL: "http://a.example", Interval: 50 * time.Millisecond,
		Load: func() (int64, int64) { return 0, 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for want := int32(1); want <= 3; want++ {
		if got := <-sessions; got != want {
			t.Fatalf("session %d, want %d", got, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestNewReporterErrors(t *testing.T) {
	load := func() (int64, int64) { return 0, 0 }
	for _, cfg := range []ReporterConfig{
		{URL: "gslb:8090", Name: "a", PublicURL: "http://a", Load: load},
		{URL: "http://gslb", Name: "", PublicURL: "http://a", Load: load},
		{URL: "http://gslb", Name: "a", PublicURL: "a:80", Load: load},
		{URL: "http://gslb", Name: "a", PublicURL: "http://a", CapacityViewers: -1, Load: load},
		{URL: "http://gslb", Name: "a", PublicURL: "http://a"},
	} {
		if _, err := NewReporter(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

package fastpath

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestMoved(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	const timeout = 16 * time.Second
	for _, c := range []struct {
		name      string
		cur, next time.Time
		want      bool
	}{
		{"first deadline", time.Time{}, t0, true},
		{"lifted", t0, time.Time{}, true},
		{"none, none", time.Time{}, time.Time{}, false},
		{"same", t0, t0, false},
		{"pushed back a little", t0, t0.Add(999 * time.Millisecond), false},
		{"pushed back a sixteenth", t0, t0.Add(time.Second), true},
		{"tightened", t0, t0.Add(-time.Millisecond), true},
		{"woken (past) then set", time.Unix(1, 0), t0, true},
	} {
		if got := moved(c.cur, c.next, timeout); got != c.want {
			t.Errorf("%s: moved = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestFastPathTimeoutsAfterRequests: deadlines that are set only when
// they move (moved) still end a keep-alive connection that idles past
// IdleTimeout (at 15/16 of it at the least), and one that sends half of
// its next head after ReadHeaderTimeout, not after IdleTimeout.
func TestFastPathTimeoutsAfterRequests(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, c := range []struct {
		name        string
		idle, head  time.Duration
		then        string
		least, most time.Duration
	}{
		{"idle", 400 * time.Millisecond, time.Hour, "", 375 * time.Millisecond, 5 * time.Second},
		{"half a head", time.Hour, 300 * time.Millisecond, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost:", 300 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			sv := serve(t, &http.Server{Handler: ok, IdleTimeout: c.idle, ReadHeaderTimeout: c.head}, Config{})
			conn, err := net.Dial("tcp", sv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(conn)
			var last time.Time
			for range 5 {
				io.WriteString(conn, "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				last = time.Now()
			}
			io.WriteString(conn, c.then)
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("read = %v, want EOF", err)
			}
			if d := time.Since(last); d < c.least || d > c.most {
				t.Errorf("closed %v after the last response, want %v to %v", d, c.least, c.most)
			}
		})
	}
}

func TestDateCache(t *testing.T) {
	var d dateCache
	t0 := time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC)
	for _, now := range []time.Time{t0, t0.Add(999 * time.Millisecond), t0.Add(time.Second), t0.Add(time.Hour).In(time.FixedZone("x", 3600))} {
		want := now.UTC().Format(http.TimeFormat)
		if got := string(d.append([]byte("Date: "), now)); got != "Date: "+want {
			t.Errorf("at %v: %q, want %q", now, got, "Date: "+want)
		}
	}
}

// TestFastPathTrickledHead: a head sent a byte at a time is ended
// ReadHeaderTimeout after its first byte, as on net/http: the bytes that
// keep coming do not push the deadline back, though the request loop
// waits for each (sock.serve).
func TestFastPathTrickledHead(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	sv := serve(t, &http.Server{Handler: ok, ReadHeaderTimeout: timeout, IdleTimeout: time.Hour}, Config{})
	conn, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, conn)
		closed <- time.Now()
	}()
	head := "GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\nUser-Agent: a-slow-client-sending-one-byte-at-a-time\r\n\r\n"
	first := time.Now()
	tick := time.NewTicker(timeout / 6)
	defer tick.Stop()
	for i := 0; i < len(head); i++ { // about 5 s in all, were it let through
		select {
		case at := <-closed:
			if d := at.Sub(first); d < timeout || d > 3*timeout {
				t.Fatalf("closed %v after the head's first byte, want about %v", d, timeout)
			}
			return
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			at := <-closed
			if d := at.Sub(first); d < timeout || d > 3*timeout {
				t.Fatalf("closed %v after the head's first byte, want about %v", d, timeout)
			}
			return
		}
	}
	t.Fatal("the whole head went through, a byte at a time")
}

package fastpath

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// events is a slog.Handler that sends each message logged to a channel.
type events chan string

func (e events) Enabled(context.Context, slog.Level) bool { return true }
func (e events) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e events) WithGroup(string) slog.Handler            { return e }
func (e events) Handle(_ context.Context, r slog.Record) error {
	select {
	case e <- r.Message:
	default:
	}
	return nil
}

// awaitLog waits for msg among the messages logged.
func awaitLog(t *testing.T, logged events, msg string) {
	t.Helper()
	for await(t, (<-chan string)(logged), msg) != msg {
	}
}

// TestFastPathClientLeavesWhileHeld: a client that leaves while its
// response is held (here, after its first bytes) ends the request's
// context, as on net/http, though the fast path has nothing to write it;
// a client that sends its next request meanwhile is not taken for gone.
func TestFastPathClientLeavesWhileHeld(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 32<<10)
	canceled := make(chan string, 4)
	release := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:100]) // the rest once released, as from a slow upstream
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			canceled <- r.URL.Path
			return
		}
		w.Write(body[100:])
	})}
	logged := make(events, 16)
	sv := serve(t, hs, Config{Logger: slog.New(logged)})
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: pop\r\n\r\n" }

	// Leaves while the watch waits: the request's context ends.
	gone, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(gone, get("/live/1"))
	if _, err := http.ReadResponse(bufio.NewReader(gone), nil); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, logged, msgWatching)
	gone.Close()
	if p := await(t, canceled, "canceled request"); p != "/live/1" {
		t.Fatalf("request for %s canceled", p)
	}
	awaitLog(t, logged, msgLeft)

	// Stays and pipelines its next request during the hold: both answered.
	stays, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stays.Close()
	stays.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(stays, get("/live/2"))
	br := bufio.NewReader(stays)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	awaitLog(t, logged, msgWatching)
	io.WriteString(stays, get("/live/2"))
	close(release)
	for i := range 2 {
		if i > 0 {
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
			t.Fatalf("response %d: status %d, %d bytes, %v", i, resp.StatusCode, len(b), err)
		}
	}
	select {
	case p := <-canceled:
		t.Fatalf("request for %s canceled, though its client stayed", p)
	default:
	}
}

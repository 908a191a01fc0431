package fastpath

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/golivestream/live/internal/fastpath/fastpathtest"
)

// TestSendFile: a body is sent from a file when the response declared
// its length, byte for byte, also through a socket it has to wait for; otherwise SendFile sends nothing and the handler writes.
func TestSendFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	file, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Write(body); err != nil {
		t.Fatal(err)
	}
	fd, size := int(file.Fd()), int64(len(body))
	sent := make(chan bool, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/live/other-length":
			w.Header().Set("Content-Length", strconv.Itoa(len(body)-1))
		case "/live/no-content":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		n, ok := w.(FileSender).SendFile(fd, size)
		if ok && n != size {
			t.Errorf("SendFile sent %d bytes of %d", n, size)
		}
		sent <- ok
		if !ok && r.URL.Path != "/live/no-content" {
			w.Write(body[:min(len(body), int(w.(*writer).declared()))])
		}
	})}
	sv := serve(t, hs, Config{})
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: pop\r\n\r\n" }
	for _, c := range []struct {
		req  string
		sent bool
		body []byte
	}{
		{get("/live/a"), true, body},
		{"HEAD /live/a HTTP/1.1\r\nHost: pop\r\n\r\n", false, nil},
		{get("/live/other-length"), false, body[:len(body)-1]},
		{get("/live/no-content"), false, nil},
	} {
		got := fastpathtest.Send(t, sv.addr, c.req, get("/live/a")).Bodies
		if s := await(t, sent, "response"); s != c.sent {
			t.Errorf("%q: sent from the file %v, want %v", c.req, s, c.sent)
		}
		if !bytes.Equal(got[0], c.body) {
			t.Errorf("%q: %d bytes, want %d", c.req, len(got[0]), len(c.body))
		}
		if s := await(t, sent, "response"); !s || !bytes.Equal(got[1], body) {
			t.Errorf("the request after %q: sent from the file %v, %d bytes", c.req, s, len(got[1]))
		}
	}

	// A reader with a small receive buffer: sendfile waits for room in
	// the socket again and again.
	c := fastpathtest.DialSmall(t, sv.addr)
	io.WriteString(c, get("/live/a"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(first, rest...), body) || !await(t, sent, "response") {
		t.Errorf("slow reader: %d bytes, %v", len(first)+len(rest), err)
	}
}

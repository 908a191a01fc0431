package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// bytesConn is a connection that reads data: for the parser's fuzz test.
type bytesConn struct {
	net.Conn // nil: only Read and Close are called
	r        *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *bytesConn) Close() error               { return nil }

// parseResponse reads one response from data as a lane does, the body
// kept or dropped.
func parseResponse(data []byte, keep bool) (head, []byte, int64, error) {
	l := newLane(context.Background(), &laneShared{bufs: &sync.Pool{}}, "")
	l.nc, l.unhook = &bytesConn{r: bytes.NewReader(data)}, func() bool { return true }
	h, _, err := l.readHead()
	if err != nil {
		return h, nil, 0, err
	}
	limit := 0
	if keep {
		limit = maxManifestBytes
	}
	body, n, err := l.body(&h, keep, nil, limit)
	return h, body, n, err
}

// FuzzResponse reads responses as a lane does, and as net/http does:
// when both read one, they agree on its status and body, kept or
// dropped.
func FuzzResponse(f *testing.F) {
	for _, tc := range framingCases {
		if len(tc.resp) < 4096 {
			f.Add([]byte(tc.resp))
		}
	}
	f.Add([]byte("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: http://h/x\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, n, err := parseResponse(data, true)
		_, _, dropped, derr := parseResponse(data, false)
		if (err == nil) != (derr == nil) || (err == nil && dropped != n) {
			t.Fatalf("kept %d bytes (%v), dropped %d (%v)", n, err, dropped, derr)
		}
		if err == nil && n != int64(len(body)) {
			t.Fatalf("length %d of a %d-byte body", n, len(body))
		}
		resp, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: http.MethodGet})
		if err != nil || herr != nil || resp.StatusCode < 200 {
			return
		}
		want, berr := io.ReadAll(resp.Body)
		if berr != nil {
			return
		}
		if h.status != resp.StatusCode || !bytes.Equal(body, want) {
			t.Fatalf("lane: %d %q; net/http: %d %q", h.status, body, resp.StatusCode, want)
		}
	})
}

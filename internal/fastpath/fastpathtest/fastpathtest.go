// Package fastpathtest holds what the tests of a server with a fast path
// share: raw pipelined exchanges, and the comparison of a handler served
// with the fast path against the same handler served by net/http alone.
package fastpathtest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Exchange is what one connection got back for its requests.
type Exchange struct {
	Responses []*http.Response
	Bodies    [][]byte
	// Reader reads what followed the last response on Conn, which the
	// test's end closes.
	Reader *bufio.Reader
	Conn   net.Conn
}

// Send sends reqs, raw request heads (and bodies), to addr on one new
// connection, written at once (pipelined), and reads as many responses
// back, each with its body. It fails t if any is missing, or if the
// exchange takes over 10 s.
func Send(t testing.TB, addr string, reqs ...string) *Exchange {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	x := &Exchange{Reader: bufio.NewReader(c), Conn: c}
	for _, q := range reqs {
		method, _, _ := strings.Cut(q, " ")
		resp, err := http.ReadResponse(x.Reader, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response to %q: %v", q, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body of %q: %v", q, err)
		}
		x.Responses, x.Bodies = append(x.Responses, resp), append(x.Bodies, body)
	}
	return x
}

// DialSmall connects to addr with a small receive buffer, fixed so that
// the kernel's autotuning cannot take in a large body while the test
// reads slowly: the server has to wait for room in the socket. The
// connection has a deadline 20 s away and is closed when the test ends.
func DialSmall(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// Compare sends reqs (as Send) to fast, the address of a server with a
// fast path, and to plain, that of net/http serving the same handler, and
// reports to t every difference in what comes back: status, framing
// (Content-Length, chunking, Connection: close), body, and every header
// but those named in ignore; of Date, only whether it is there. When the
// last response says Connection: close, each server must then close the
// connection.
func Compare(t testing.TB, fast, plain string, reqs []string, ignore ...string) {
	t.Helper()
	ignore = append(ignore, "Date")
	var got [2]*Exchange
	for i, addr := range [2]string{fast, plain} {
		x := Send(t, addr, reqs...)
		got[i] = x
		if x.Responses[len(reqs)-1].Close {
			x.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := x.Reader.ReadByte(); err != io.EOF {
				t.Errorf("%s: read after Connection: close = %v, want EOF", [2]string{"fast path", "net/http"}[i], err)
			}
		}
	}
	f, p := got[0], got[1]
	for i := range reqs {
		fr, pr := f.Responses[i], p.Responses[i]
		if fr.StatusCode != pr.StatusCode || fr.ContentLength != pr.ContentLength || fr.Close != pr.Close ||
			!slices.Equal(fr.TransferEncoding, pr.TransferEncoding) || string(f.Bodies[i]) != string(p.Bodies[i]) {
			t.Errorf("request %d: fast path %d, length %d %v, close %v, body %q; net/http %d, length %d %v, close %v, body %q",
				i, fr.StatusCode, fr.ContentLength, fr.TransferEncoding, fr.Close, abbreviate(f.Bodies[i]),
				pr.StatusCode, pr.ContentLength, pr.TransferEncoding, pr.Close, abbreviate(p.Bodies[i]))
		}
		for _, h := range [2]http.Header{fr.Header, pr.Header} {
			for k := range h {
				if slices.Contains(ignore, k) {
					continue
				}
				if fv, pv := fr.Header.Values(k), pr.Header.Values(k); !slices.Equal(fv, pv) {
					t.Errorf("request %d: %s: fast path %q, net/http %q", i, k, fv, pv)
				}
			}
		}
		if fd, pd := fr.Header.Get("Date") != "", pr.Header.Get("Date") != ""; fd != pd {
			t.Errorf("request %d: Date given: fast path %v, net/http %v", i, fd, pd)
		}
	}
}

// abbreviate shortens a body for a message.
func abbreviate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

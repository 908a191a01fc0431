package fastpath

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// TestDialContext: an http.Transport dialing with DialContext sends
// and receives bodies larger than the socket buffers, in both
// directions, reuses its connection, and its connections keep their
// deadlines.
func TestDialContext(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, big[:len(got)]) {
			http.Error(w, "body damaged", http.StatusBadRequest)
			return
		}
		w.Write(big)
	}))
	defer srv.Close()
	dials := 0
	dial := DialContext(&net.Dialer{Timeout: 5 * time.Second})
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		return dial(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for i, body := range [][]byte{nil, big[:100], big} {
		resp, err := client.Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, big) {
			t.Fatalf("request %d: %d, %d bytes (%v), want 200 and %d bytes", i, resp.StatusCode, len(got), err, len(big))
		}
	}
	if dials != 1 {
		t.Errorf("%d connections dialed for 3 requests, want 1", dials)
	}

	// Deadlines: nothing comes from a peer that never writes.
	c, peer := tcpPair(t, dial)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v, want a deadline error", err)
	}
	peer.Close()
	c.SetReadDeadline(time.Time{})
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("read after the peer closed: %v, want EOF", err)
	}
}

// tcpPair returns the two ends of a TCP connection on loopback, a dialed
// with dial (nil: net.Dialer's).
func tcpPair(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (a, b net.Conn) {
	t.Helper()
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

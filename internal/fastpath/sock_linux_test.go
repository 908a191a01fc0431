//go:build linux

package fastpath

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestSockWriteBuffers: buffers far larger than the socket's buffers
// arrive whole and in order, a write that finds the socket full waiting
// for the reader and going on from inside a buffer.
func TestSockWriteBuffers(t *testing.T) {
	a, b := tcpPair(t, nil)
	a.(*net.TCPConn).SetWriteBuffer(16 << 10)
	rng := rand.New(rand.NewPCG(3, 4))
	var bufs [][]byte
	var want []byte
	for _, n := range []int{0, 1, 100, 3 << 20, 0, 7, 1 << 20, 12345} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		bufs = append(bufs, p)
		want = append(want, p...)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(b)
		got <- b
	}()
	s := newSock(a)
	n, err := s.writeBuffers(bufs)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("writeBuffers = %d, %v; want %d, nil", n, err, len(want))
	}
	if n, err := s.writeBuffers([][]byte{nil, {}}); n != 0 || err != nil {
		t.Fatalf("writeBuffers of nothing = %d, %v", n, err)
	}
	a.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes, not the %d written", len(b), len(want))
	}
}

// TestSockRead: a read waits for bytes, reads what came, ends with
// io.EOF when the peer closes, and returns a timeout at its deadline.
func TestSockRead(t *testing.T) {
	a, b := tcpPair(t, nil)
	s := newSock(a)
	go func() {
		b.Write([]byte("hello"))
		b.Write([]byte(", world"))
		b.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := s.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, EOF", n, err)
	}

	a, _ = tcpPair(t, nil)
	s = newSock(a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v; want a timeout", err)
	}
}

// TestSockWriteDeadline: a write to a peer that reads nothing ends at
// the write deadline, with what it wrote counted.
func TestSockWriteDeadline(t *testing.T) {
	a, _ := tcpPair(t, nil)
	s := newSock(a)
	big := make([]byte, 64<<20) // before the deadline: zeroing it takes time
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := s.writeBuffers([][]byte{big})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writeBuffers to a peer not reading: %v; want a timeout", err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("wrote %d bytes; want some, not all", n)
	}
}

// TestSockNotASocket: a connection that is no socket is read and written
// as it is.
func TestSockNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s := newSock(a)
	go func() { // echoes the 3 bytes written
		p := make([]byte, 3)
		io.ReadFull(b, p)
		b.Write(p)
	}()
	if _, err := s.writeBuffers([][]byte{[]byte("ab"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3)
	if _, err := io.ReadFull(s, p); err != nil || string(p) != "abc" {
		t.Fatalf("read back %q, %v", p, err)
	}
}

// TestSockWriteAllocs: a write that the socket takes whole allocates
// nothing once the sock has written as many buffers before (a write
// used to leave its iovec array behind, consumed from the front).
func TestSockWriteAllocs(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector's system calls allocate; test.sh runs this package without it too")
	}
	a, b := tcpPair(t, nil)
	go io.Copy(io.Discard, b)
	s := newSock(a)
	bufs := [][]byte{[]byte("HTTP/1.1 200 OK\r\n\r\n"), []byte("body")}
	if _, err := s.writeBuffers(bufs); err != nil {
		t.Fatal(err)
	}
	var err error
	if n := testing.AllocsPerRun(100, func() { _, err = s.writeBuffers(bufs) }); n != 0 || err != nil {
		t.Errorf("%v allocations per write (%v), want none", n, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, err = s.Write(bufs[1]) }); n != 0 || err != nil {
		t.Errorf("%v allocations per Write (%v), want none", n, err)
	}
}

// TestSockServe: inside serve, a request that came whole costs one read:
// the short read that emptied the socket is followed by a wait, not by a
// read that finds nothing. Bytes that come while step works (after that
// read, before the wait) are not missed, the peer's close ends step, and
// the wait ends at the read deadline.
func TestSockServe(t *testing.T) {
	a, b := tcpPair(t, nil)
	s := newSock(a)
	br := bufio.NewReaderSize(s, 4<<10)
	const pings = 50
	working := make(chan struct{})
	sent := make(chan struct{})
	var ended error
	served := make(chan error, 1)
	go func() {
		served <- s.serve(func() bool {
			for {
				buf, _ := br.Peek(br.Buffered())
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					if _, err := br.Peek(len(buf) + 1); err == errWouldBlock {
						return false
					} else if err != nil {
						ended = err
						return true
					}
					continue
				}
				line := string(buf[:i])
				br.Discard(i + 1)
				if line == "hold" { // the next line is sent meanwhile
					working <- struct{}{}
					<-sent
				}
				if _, err := s.Write([]byte(line + " ok\n")); err != nil {
					ended = err
					return true
				}
			}
		})
	}()
	b.SetDeadline(time.Now().Add(10 * time.Second)) // a lost wakeup fails, not hangs
	r := bufio.NewReader(b)
	ask := func(line string) {
		t.Helper()
		if _, err := io.WriteString(b, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadString('\n'); err != nil || got != line+" ok\n" {
			t.Fatalf("answer to %q: %q, %v", line, got, err)
		}
	}
	for i := range pings {
		ask(strconv.Itoa(i))
	}
	// One more when serve's first read comes before the first request.
	if reads := s.reads; reads < pings || reads > pings+1 {
		t.Errorf("%d reads for %d requests, one at a time: want %d", reads, pings, pings)
	}
	io.WriteString(b, "hold\n")
	<-working
	io.WriteString(b, "after\n")
	close(sent)
	for _, want := range []string{"hold ok\n", "after ok\n"} {
		if got, err := r.ReadString('\n'); err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	b.Close()
	if err := <-served; err != nil || ended != io.EOF {
		t.Fatalf("serve = %v, step ended by %v; want nil, EOF", err, ended)
	}

	a, _ = tcpPair(t, nil)
	s = newSock(a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := s.serve(func() bool {
		_, err := s.Read(make([]byte, 8))
		return err != errWouldBlock
	}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("serve past its deadline: %v; want a timeout", err)
	}
}

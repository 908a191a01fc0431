package relay

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// Bytes pass both ways until Freeze; after it the client's bytes stop
// reaching the target while the connection stays open and the target's
// bytes still arrive.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() { // the target: echoes each line with "ok " before it, and reports it
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		lines := bufio.NewScanner(s)
		for lines.Scan() {
			got <- lines.Text()
			io.WriteString(s, "ok "+lines.Text()+"\n")
		}
		close(got)
	}()
	r := Start(t, ln.Addr().String())
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	replies := bufio.NewReader(c)
	io.WriteString(c, "one\n")
	if line, err := replies.ReadString('\n'); line != "ok one\n" || err != nil {
		t.Fatalf("reply %q, %v", line, err)
	}
	<-got

	r.Freeze()
	io.WriteString(c, "two\n") // dropped
	// The target hears nothing more, and the connection is still open:
	// until Close, which ends it.
	select {
	case line, ok := <-got:
		t.Fatalf("the target got %q (open %v) after Freeze", line, ok)
	case <-time.After(200 * time.Millisecond):
	}
	r.Close()
	if line, ok := <-got; ok {
		t.Errorf("the target got %q after Freeze", line)
	}
	if _, err := replies.ReadString('\n'); err == nil {
		t.Errorf("the client's connection is still open after Close")
	}
}

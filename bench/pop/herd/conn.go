package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// conn is one client connection, reused across herds (keep-alive).
type conn struct {
	addr string
	c    net.Conn
	fb   *firstByte
	br   *bufio.Reader
	dead bool
}

// firstByte records when the first byte after a reset arrived.
type firstByte struct {
	r  io.Reader
	at time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

func dial(addr string) (*conn, error) {
	var err error
	for attempt := range 5 {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			fb := &firstByte{r: c}
			return &conn{addr: addr, c: c, fb: fb, br: bufio.NewReaderSize(fb, 16<<10)}, nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return nil, fmt.Errorf("dial %s: %w", addr, err)
}

// dialAll opens n connections spread evenly over addrs, a few at a time so
// that no listen backlog overflows.
func dialAll(addrs []string, n int) ([]*conn, error) {
	conns := make([]*conn, n)
	errs := make([]error, n)
	parallel(n, 64, func(i int) { conns[i], errs[i] = dial(addrs[i%len(addrs)]) })
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

// redialDead replaces the connections that a server closed while idle.
func redialDead(conns []*conn) error {
	errs := make([]error, len(conns))
	parallel(len(conns), 64, func(i int) {
		c := conns[i]
		if !c.dead && alive(c.c) {
			return
		}
		c.c.Close()
		nc, err := dial(c.addr)
		if err != nil {
			errs[i] = err
			return
		}
		conns[i] = nc
	})
	return errors.Join(errs...)
}

// alive peeks at the socket without blocking: EOF or an error means the
// peer closed it.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n > 0 || errors.Is(err, syscall.EAGAIN)
		return true
	})
	return ok
}

// parallel runs f(0..n-1) on at most workers goroutines.
func parallel(n, workers int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

//go:build linux

package pop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSegmentHit measures the CPU of full GETs of a cached segment
// over loopback on one connection, the body sent with sendfile(2) from
// its body file or written from the heap, for the sizes around
// sendfileMin: where sendfile's second system call (the head goes
// first, with MSG_MORE) costs less than the copy it saves. cpu-ns/op is
// the whole process's CPU per request, the client's reading included,
// which is the same for both.
//
//	go test -run '^$' -bench SegmentHit -benchtime 20000x ./pop
func BenchmarkSegmentHit(b *testing.B) {
	for _, size := range []int{16 << 10, 32 << 10, 64 << 10, 96 << 10, 128 << 10, 192 << 10, 256 << 10, 512 << 10} {
		for _, send := range []string{"sendfile", "write"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, send), func(b *testing.B) {
				benchSegmentHit(b, size, send == "sendfile")
			})
		}
	}
}

func benchSegmentHit(b *testing.B, size int, sendfile bool) {
	body := randomBody(size)
	origin := newStubOrigin(b, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	s, err := New(Config{Origins: []string{origin.URL}})
	if err != nil {
		b.Fatal(err)
	}
	minimum := size + 1 // written
	if sendfile {
		minimum = size
	}
	s.local.cfg.sendfileMin = minimum // a node without peers: no proxy layer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	served := make(chan error, 1)
	go func() { served <- s.Serve(hs, ln) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Minute))
	req := []byte("GET /live/s/e/v0/1.m4s HTTP/1.1\r\nHost: pop\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReaderSize(nc, 64<<10)
	get := func() {
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
		head, err := readHead(br)
		if err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
			b.Fatalf("response %q: %v", head, err)
		}
		if _, err := br.Discard(size); err != nil {
			b.Fatal(err)
		}
	}
	// A miss, then hits until the object is complete in the cache (with
	// its file, when it gets one).
	filed := counterValue(s.metrics.sendfile)
	for tries := 0; ; tries++ {
		get()
		if !sendfile || counterValue(s.metrics.sendfile) > filed {
			break
		}
		if tries == 1000 {
			b.Fatal("no response sent from a body file after 1000 hits")
		}
	}
	before := counterValue(s.metrics.sendfile)
	cpu := processCPU(b)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		get()
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	// The count moves after the client has the body: the warm-up's last
	// may land here.
	if got := counterValue(s.metrics.sendfile) - before; sendfile && got < float64(b.N) || !sendfile && got != 0 {
		b.Fatalf("%v of %d responses sent from the file (sendfile %v)", got, b.N, sendfile)
	}
}

// readHead reads a response head, through its blank line.
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			return head, err
		}
		if len(line) <= 2 {
			return head, nil
		}
		if len(head) > 8<<10 {
			return head, io.ErrShortBuffer
		}
	}
}

// processCPU is the process's user and system CPU so far, in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

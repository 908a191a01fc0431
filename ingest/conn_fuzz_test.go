package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/golivestream/live/publisher"
)

// FuzzConn feeds a server connection arbitrary bytes after a real
// handshake, as a broken or hostile publisher would. Whatever they are,
// the connection ends once the client has closed, without a panic (which
// conn.run would recover and log) and without hanging. The seed is the
// start of a real publish of the demo clip: connect, publish, metadata,
// the codec configurations and the first frames, which the fuzzer mutates.
func FuzzConn(f *testing.F) {
	f.Add(recordPublish(f))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 4096))

	panics := &panicLog{}
	srv, err := New(Config{
		Listener:    nopListener{},
		Handler:     &countingHandler{},
		ReadTimeout: 2 * time.Second,
		Logger:      slog.New(panics),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		replay(t, srv, data)
		if p := panics.take(); p != "" {
			t.Fatalf("the connection panicked: %s", p)
		}
	})
}

// The fuzz seed drives a whole publish: replayed after a fresh handshake,
// the recorded bytes reach the handler with both tracks and with frames.
func TestConnReplay(t *testing.T) {
	h := &countingHandler{}
	srv, err := New(Config{Listener: nopListener{}, Handler: h, ReadTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	replay(t, srv, recordPublish(t))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tracks != 2 || h.video == 0 || h.audio == 0 {
		t.Errorf("handler got %d tracks, %d video and %d audio frames; want 2 tracks and frames of each", h.tracks, h.video, h.audio)
	}
}

// replay serves one connection of srv, on loopback, to a client that
// shakes hands, sends data and half-closes, as a publisher that is done
// does, then reads what the server says until it closes. It fails t if
// the server's side does not end. As encoders do, the client sends what
// follows its publish command only once the server has answered it.
func replay(t *testing.T, srv *Server, data []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{srv: srv, ctx: context.Background(), nc: server, log: srv.log, ending: make(chan struct{}), released: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run()
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := handshake.DoClient(client, false, false); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	started := make(chan struct{}) // the server said NetStream.Publish.Start
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		// What the server says, until it closes.
		io.Copy(io.Discard, &markReader{r: client, mark: []byte("NetStream.Publish.Start"), seen: started})
	}()
	// Each write fails if the server has given up on us.
	if at := publishEnd(data); at >= 0 {
		client.Write(data[:at])
		select {
		case <-started:
		case <-drained:
		}
		data = data[at:]
	}
	client.Write(data)
	client.(*net.TCPConn).CloseWrite()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's connection did not end after the client finished")
	}
	<-drained
}

// publishEnd returns where the first publish command of a client's chunk
// stream ends, as gortmplib's reader reads it, or -1.
func publishEnd(data []byte) int {
	r := bytes.NewReader(data)
	// One byte per read: the reader's buffer holds nothing beyond what
	// it has returned.
	bcr := bytecounter.NewReader(iotest.OneByteReader(r))
	mr := message.NewReader(bcr, bcr, func(uint32) error { return nil })
	for {
		m, err := mr.Read()
		if err != nil {
			return -1
		}
		if cmd, ok := m.(*message.CommandAMF0); ok && cmd.Name == "publish" {
			return len(data) - r.Len()
		}
	}
}

// markReader reads r and closes seen once mark has passed.
type markReader struct {
	r    io.Reader
	mark []byte
	seen chan struct{}
	tail []byte // the last bytes read, as long as mark at most
}

func (m *markReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if m.mark == nil {
		return n, err
	}
	m.tail = append(m.tail, p[:n]...)
	if bytes.Contains(m.tail, m.mark) {
		close(m.seen)
		m.mark = nil
		return n, err
	}
	m.tail = m.tail[max(0, len(m.tail)-len(m.mark)):]
	return n, err
}

// countingHandler accepts every stream and counts what it gets.
type countingHandler struct {
	mu                              sync.Mutex
	publishes, tracks, video, audio int
	closes, drops                   int
}

func (h *countingHandler) Publish(_ string, tracks []codecs.Codec, _ time.Time) (Session, error) {
	h.mu.Lock()
	h.publishes++
	h.tracks += len(tracks)
	h.mu.Unlock()
	return countingSession{h}, nil
}

type countingSession struct{ h *countingHandler }

func (s countingSession) WriteVideo(int, time.Duration, time.Duration, [][]byte) error {
	s.h.mu.Lock()
	s.h.video++
	s.h.mu.Unlock()
	return nil
}

func (s countingSession) WriteAudio(int, time.Duration, []byte) error {
	s.h.mu.Lock()
	s.h.audio++
	s.h.mu.Unlock()
	return nil
}

func (s countingSession) Close() {
	s.h.mu.Lock()
	s.h.closes++
	s.h.mu.Unlock()
}

func (s countingSession) Drop() {
	s.h.mu.Lock()
	s.h.drops++
	s.h.mu.Unlock()
}

// recordPublish publishes a miniature of the demo clip to a Server on
// loopback and returns what the publisher sent after its handshake: the
// clip's first 2.5 s (gortmplib reads 2 s of media before it settles the
// tracks), with every frame cut to its first bytes, so that the fuzzer
// has a small input that still goes all the way.
func recordPublish(tb testing.TB) []byte {
	tb.Helper()
	demo := clipLoadDemo(tb)
	mini := &publisher.Clip{Tracks: demo.Tracks, Duration: 2500 * time.Millisecond}
	for _, s := range demo.Samples {
		if s.DTS >= mini.Duration {
			break
		}
		nalus := make([][]byte, len(s.NALUs))
		for i, n := range s.NALUs {
			nalus[i] = n[:min(len(n), 4)]
		}
		s.NALUs = nalus
		s.AU = s.AU[:min(len(s.AU), 4)]
		mini.Samples = append(mini.Samples, s)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rec := &recordingListener{Listener: ln, limit: 1 << 20}
	srv, err := New(Config{Listener: rec, Handler: &countingHandler{}})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	err = publisher.Publish(context.Background(), publisher.Config{
		URL: "rtmp://" + ln.Addr().String() + "/live/seed", Clip: mini, Loops: 1, Speed: -1,
	})
	cancel()
	if rerr := <-ran; rerr != nil {
		tb.Fatal(rerr)
	}
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	b := rec.bytes()
	if len(b) <= handshakeLen {
		tb.Fatalf("recorded %d bytes", len(b))
	}
	return b[handshakeLen:]
}

// recordingListener keeps the first limit bytes read from the first
// connection it accepts.
type recordingListener struct {
	net.Listener
	limit int

	mu  sync.Mutex
	buf []byte
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

func (l *recordingListener) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf)
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	if room := c.l.limit - len(c.l.buf); room > 0 {
		c.l.buf = append(c.l.buf, p[:min(n, room)]...)
	}
	c.l.mu.Unlock()
	return n, err
}

// nopListener is a listener nothing connects to: the fuzz test hands
// connections to the server itself.
type nopListener struct{}

func (nopListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (nopListener) Close() error              { return nil }
func (nopListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// panicLog is a slog.Handler that keeps the first record of a recovered
// panic.
type panicLog struct {
	mu    sync.Mutex
	first string
}

func (*panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h *panicLog) WithGroup(string) slog.Handler          { return h }

func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panicked") {
		return nil
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	h.mu.Lock()
	if h.first == "" {
		h.first = msg
	}
	h.mu.Unlock()
	return nil
}

// take returns the panic recorded since the last take, if any.
func (h *panicLog) take() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.first
	h.first = ""
	return p
}

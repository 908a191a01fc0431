package publisher

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// publishSession is one publishing connection. The gortmplib client is not
// safe for concurrent use, and its Read may itself write (acknowledgements,
// ping responses), so every call into it holds mu.
type publishSession struct {
	client *gortmplib.Client
	raw    *pendingConn
	log    *slog.Logger

	mu sync.Mutex // serialises calls into client

	// rejected is the server's refusal; written by readLoop before it
	// returns, read after it has.
	rejected error
	// readErr is why readLoop stopped (never nil once it has); same rules
	// as rejected.
	readErr error
}

// writeLoop announces the tracks and sends the samples until the last loop,
// ctx is done or the reader stops (the connection is gone).
func (s *publishSession) writeLoop(ctx context.Context, clip *Clip, loops int, speed float64,
	readerDone <-chan struct{},
) error {
	w := &gortmplib.Writer{Conn: s, Tracks: clip.Tracks}
	if err := w.Initialize(); err != nil {
		return fmt.Errorf("announce tracks: %w", err)
	}
	sched := loopSchedule{samples: clip.Samples, duration: clip.Duration, loops: loops}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	start, first := time.Now(), clip.Samples[0].DTS
	lastLoop := 0
	for {
		smp, loop, ok := sched.next()
		if !ok {
			return nil
		}
		if loop != lastLoop {
			lastLoop = loop
			s.log.Debug("rtmp publish loop", "loop", loop)
		}
		offset := time.Duration(loop) * clip.Duration
		if speed > 0 {
			due := start.Add(time.Duration(float64(smp.DTS+offset-first) / speed))
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-readerDone:
					return fmt.Errorf("connection lost: %w", s.readErr)
				case <-timer.C:
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		track := clip.Tracks[smp.Track]
		switch track.Codec.(type) {
		case *codecs.H264:
			err = w.WriteH264(track, smp.PTS+offset, smp.DTS+offset, smp.NALUs)
		case *codecs.MPEG4Audio:
			err = w.WriteMPEG4Audio(track, smp.PTS+offset, smp.AU)
		}
		if err != nil {
			return fmt.Errorf("write sample: %w", err)
		}
	}
}

// readLoop reads what the server sends until the connection fails or the
// server refuses the stream; either way it closes the connection, which
// stops writeLoop.
func (s *publishSession) readLoop() {
	defer s.client.Close()
	for {
		// Wait for bytes without the lock; the read below reports errors.
		_ = s.raw.fill()
		msg, err := s.Read()
		if err != nil {
			s.readErr = err
			return
		}
		if rej := rejection(msg); rej != nil {
			s.rejected, s.readErr = rej, rej
			return
		}
		s.log.Debug("rtmp message from server", "type", fmt.Sprintf("%T", msg))
	}
}

// finish ends the stream as ffmpeg does, with deleteStream, then
// half-closes the connection: the server reads an end of stream. Errors are
// only logged: the media has been sent, and the drain timeout applies.
func (s *publishSession) finish() {
	err := s.Write(&message.CommandAMF0{
		ChunkStreamID: 3,
		Name:          "deleteStream",
		CommandID:     6,
		Arguments:     []any{nil, float64(1)}, // the stream createStream made
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if cw, ok := s.client.NetConn().(interface{ CloseWrite() error }); ok && err == nil {
		err = cw.CloseWrite()
	}
	if err != nil {
		s.log.Debug("rtmp end of stream not sent", "reason", err)
	}
}

// Read reads one message, with a deadline, holding the lock: called only
// once bytes are there, it blocks no longer than a message takes to arrive.
func (s *publishSession) Read() (message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nc := s.client.NetConn()
	deadline := time.Now().Add(publishIOTimeout)
	if err := nc.SetDeadline(deadline); err != nil { // Read may write an acknowledgement
		return nil, err
	}
	msg, err := s.client.Read()
	if derr := nc.SetReadDeadline(time.Time{}); err == nil {
		err = derr
	}
	return msg, err
}

// Write writes one message with a deadline. It is how gortmplib.Writer
// reaches the connection.
func (s *publishSession) Write(msg message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.client.NetConn().SetWriteDeadline(time.Now().Add(publishIOTimeout)); err != nil {
		return err
	}
	return s.client.Write(msg)
}

// BytesReceived returns the number of bytes received.
func (s *publishSession) BytesReceived() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.BytesReceived()
}

// BytesSent returns the number of bytes sent.
func (s *publishSession) BytesSent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.BytesSent()
}

// rejection returns the refusal that msg carries, if any: an onStatus or
// _error command whose info object has level "error".
func rejection(msg message.Message) error {
	cmd, ok := msg.(*message.CommandAMF0)
	if !ok || (cmd.Name != "onStatus" && cmd.Name != "_error") {
		return nil
	}
	for _, arg := range cmd.Arguments {
		var info amf0.Object
		switch a := arg.(type) {
		case amf0.Object:
			info = a
		case amf0.ECMAArray:
			info = amf0.Object(a)
		default:
			continue
		}
		if level, _ := info.GetString("level"); level != "error" {
			return nil
		}
		code, _ := info.GetString("code")
		desc, _ := info.GetString("description")
		return fmt.Errorf("%w: %s: %s", ErrRejected, code, desc)
	}
	return nil
}

// pendingConn lets the reading goroutine wait for incoming bytes without
// holding publishSession.mu: fill blocks on the socket unlocked, and Read,
// called by the gortmplib client under the lock, hands those bytes over
// first. Only the reading goroutine (or Initialize, before it starts) reads.
type pendingConn struct {
	net.Conn
	buf     [4096]byte
	pending []byte
}

// Read returns the bytes fill got, then reads the socket.
func (c *pendingConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// fill blocks until some bytes arrive, unless some are pending already.
func (c *pendingConn) fill() error {
	if len(c.pending) > 0 {
		return nil
	}
	n, err := c.Conn.Read(c.buf[:])
	c.pending = c.buf[:n]
	return err
}

// CloseWrite half-closes the socket, if it can.
func (c *pendingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// loopSchedule yields a clip's samples over its loops in DTS order. Loop k+1
// starts one duration after loop k; a track that starts late (AAC after its
// priming delay) still has samples of loop k due after the first ones of
// loop k+1, so the two loops are merged. Loops of zero means forever.
type loopSchedule struct {
	samples  []ClipSample
	duration time.Duration
	loops    int
	loop     int // the loop being sent
	cur      int // next sample of loop
	ahead    int // samples of loop+1 sent already
}

// next returns the next sample to send and its loop, or false when done.
func (s *loopSchedule) next() (ClipSample, int, bool) {
	for s.cur == len(s.samples) {
		if !s.hasLoop(s.loop + 1) {
			return ClipSample{}, 0, false
		}
		s.loop++
		s.cur, s.ahead = s.ahead, 0
	}
	if s.hasLoop(s.loop+1) && s.ahead < len(s.samples) &&
		s.samples[s.ahead].DTS+s.duration < s.samples[s.cur].DTS {
		s.ahead++
		return s.samples[s.ahead-1], s.loop + 1, true
	}
	s.cur++
	return s.samples[s.cur-1], s.loop, true
}

// hasLoop reports whether loop k is to be sent.
func (s *loopSchedule) hasLoop(k int) bool {
	return s.loops == 0 || k < s.loops
}

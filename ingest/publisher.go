package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ErrPublishRejected is wrapped by the error Publish returns when the server
// refuses the stream with an onStatus (or _error) of level "error"; the
// error text holds the server's code and description.
var ErrPublishRejected = errors.New("publish rejected by server")

const (
	// publishIOTimeout bounds the handshake and every write, so that a
	// stuck server cannot block Publish forever.
	publishIOTimeout = 10 * time.Second
	// publishDrainTimeout is how long Publish waits, once it stops
	// sending, for the server to object or close the connection.
	publishDrainTimeout = 2 * time.Second
)

// PublisherConfig configures Publish.
type PublisherConfig struct {
	// URL is where to publish: rtmp://host:port/live/name (or rtmps://).
	// Required.
	URL string
	// Clip is the media to send. Required.
	Clip *Clip
	// Loops is how many times to play the clip; zero means forever (until
	// ctx is done).
	Loops int
	// Speed is the pacing relative to real time; zero means 1.0 (real
	// time), a negative value means as fast as possible.
	Speed float64
	// Logger receives connection events; nil means discard.
	Logger *slog.Logger
}

// Publish connects, announces the clip's tracks and sends its samples paced
// on the wall clock, looping with timestamps that keep increasing across
// loops (loop k adds k*Clip.Duration to every PTS/DTS; where a late track's
// last samples overlap the next loop's first ones, the two are interleaved
// in DTS order). It returns nil after the last loop, ctx.Err() when ctx is
// done, an error wrapping ErrPublishRejected when the server refuses the
// stream, or the connection error (wrapped). Every write has a deadline.
//
// While sending, a goroutine reads what the server says, so that a refusal
// is noticed and the server's window never fills.
func Publish(ctx context.Context, cfg PublisherConfig) error {
	u, speed, err := checkPublisherConfig(cfg)
	if err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("url", u.Redacted())

	var raw *pendingConn
	client := &gortmplib.Client{
		URL:     u,
		Publish: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The RTMP handshake has no timeout of its own.
			if err := nc.SetDeadline(time.Now().Add(publishIOTimeout)); err != nil {
				nc.Close()
				return nil, err
			}
			raw = &pendingConn{Conn: nc}
			return raw, nil
		},
	}
	if err := client.Initialize(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A refusal of the publish command itself ends up here as
		// "bad result: ..." with the server's status object in the text.
		return fmt.Errorf("rtmp connect: %w", err)
	}
	if err := client.NetConn().SetDeadline(time.Time{}); err != nil {
		client.Close()
		return fmt.Errorf("rtmp connect: %w", err)
	}
	log.Info("rtmp publishing", "tracks", len(cfg.Clip.Tracks), "loops", cfg.Loops, "speed", speed)

	closed := make(chan struct{})
	stopClosing := context.AfterFunc(ctx, func() {
		client.Close()
		close(closed)
	})
	defer func() {
		if !stopClosing() {
			<-closed
		}
	}()

	s := &publishSession{client: client, raw: raw, log: log}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.readLoop()
	}()

	werr := s.writeLoop(ctx, cfg.Clip, cfg.Loops, speed, readerDone)
	if ctx.Err() == nil {
		if werr == nil {
			s.finish() // no more media: the server should close
		}
		timer := time.NewTimer(publishDrainTimeout)
		select {
		case <-readerDone:
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
	client.Close()
	<-readerDone

	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case s.rejected != nil:
		return s.rejected
	case werr != nil:
		return werr
	}
	log.Info("rtmp publish done")
	return nil
}

// checkPublisherConfig validates cfg and returns the parsed URL and the
// effective speed (negative: no pacing).
func checkPublisherConfig(cfg PublisherConfig) (*url.URL, float64, error) {
	if cfg.URL == "" {
		return nil, 0, errors.New("publisher: no URL")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("publisher: %w", err)
	}
	if u.Scheme != "rtmp" && u.Scheme != "rtmps" {
		return nil, 0, fmt.Errorf("publisher: unsupported scheme %q (want rtmp or rtmps)", u.Scheme)
	}
	if cfg.Loops < 0 {
		return nil, 0, fmt.Errorf("publisher: negative loop count %d", cfg.Loops)
	}
	speed := cfg.Speed
	switch {
	case math.IsNaN(speed):
		return nil, 0, errors.New("publisher: speed is NaN")
	case speed == 0:
		speed = 1
	}
	if err := checkClip(cfg.Clip); err != nil {
		return nil, 0, fmt.Errorf("publisher: %w", err)
	}
	return u, speed, nil
}

// checkClip makes sure that the gortmplib writer will accept c (it panics on
// an invalid SPS) and that its samples can be paced in order.
func checkClip(c *Clip) error {
	if c == nil {
		return errors.New("no clip")
	}
	if len(c.Samples) == 0 || c.Duration <= 0 {
		return errors.New("empty clip")
	}
	for i, t := range c.Tracks {
		if t == nil {
			return fmt.Errorf("track %d is nil", i)
		}
		switch codec := t.Codec.(type) {
		case *codecs.H264:
			var sps h264.SPS
			if err := sps.Unmarshal(codec.SPS); err != nil || len(codec.PPS) == 0 {
				return fmt.Errorf("track %d: H.264 without valid SPS and PPS", i)
			}
		case *codecs.MPEG4Audio:
			if codec.Config == nil {
				return fmt.Errorf("track %d: AAC without config", i)
			}
		default:
			return fmt.Errorf("track %d: unsupported codec %T", i, t.Codec)
		}
	}
	for i, s := range c.Samples {
		if s.Track < 0 || s.Track >= len(c.Tracks) {
			return fmt.Errorf("sample %d: no track %d", i, s.Track)
		}
		if s.DTS < 0 || (i > 0 && s.DTS < c.Samples[i-1].DTS) {
			return fmt.Errorf("sample %d: DTS %v negative or out of order", i, s.DTS)
		}
	}
	return nil
}

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
		return fmt.Errorf("%w: %s: %s", ErrPublishRejected, code, desc)
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

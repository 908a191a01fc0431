package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ErrRejected is wrapped by the error Publish returns when the server
// refuses the stream with an onStatus (or _error) of level "error"; the
// error text holds the server's code and description.
var ErrRejected = errors.New("publish rejected by server")

const (
	// publishIOTimeout bounds the handshake and every write, so that a
	// stuck server cannot block Publish forever.
	publishIOTimeout = 10 * time.Second
	// publishDrainTimeout is how long Publish waits, once it stops
	// sending, for the server to object or close the connection.
	publishDrainTimeout = 2 * time.Second
)

// Config configures Publish.
type Config struct {
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
	// TLSConfig is used for an rtmps:// URL; its ServerName defaults to
	// the URL's host. Nil means the system's roots and the URL's host.
	TLSConfig *tls.Config
	// Logger receives connection events; nil means discard.
	Logger *slog.Logger
}

// Publish connects, announces the clip's tracks and sends its samples paced
// on the wall clock, looping with timestamps that keep increasing across
// loops (loop k adds k*Clip.Duration to every PTS/DTS; where a late track's
// last samples overlap the next loop's first ones, the two are interleaved
// in DTS order). It returns nil after the last loop, ctx.Err() when ctx is
// done, an error wrapping ErrRejected when the server refuses the
// stream, or the connection error (wrapped). Every write has a deadline.
//
// While sending, a goroutine reads what the server says, so that a refusal
// is noticed and the server's window never fills.
func Publish(ctx context.Context, cfg Config) error {
	u, speed, err := checkPublisherConfig(cfg)
	if err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("url", redacted(u))

	tlsConfig := cfg.TLSConfig
	if tlsConfig != nil && tlsConfig.ServerName == "" {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.ServerName = u.Hostname()
	}
	var raw *pendingConn
	client := &gortmplib.Client{
		URL:       u,
		Publish:   true,
		TLSConfig: tlsConfig,
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
func checkPublisherConfig(cfg Config) (*url.URL, float64, error) {
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

// redacted is u as logs show it: without its password or key.
func redacted(u *url.URL) string {
	if q := u.Query(); q.Has("key") {
		q.Set("key", "xxxxx")
		c := *u
		c.RawQuery = q.Encode()
		u = &c
	}
	return u.Redacted()
}

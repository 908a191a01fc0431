package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// Errors a publisher can be refused with; the handler may return others.
var (
	ErrBadName          = errors.New("invalid stream name")
	ErrStreamBusy       = errors.New("stream is already being published")
	ErrUnsupportedCodec = errors.New("unsupported codec")
	ErrPlayUnsupported  = errors.New("playback over RTMP is not supported: use HLS or DASH")
)

// validName is the shape of a stream name: it becomes a path segment of
// every URL, so it is kept to a safe alphabet.
var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseStreamPath returns the stream name of an RTMP path "/{app}/{name}",
// or ErrBadName.
func ParseStreamPath(app, path string) (string, error) {
	rest, ok := strings.CutPrefix(path, "/"+app+"/")
	if !ok {
		return "", fmt.Errorf("%w: publish to /%s/{name}, not %q", ErrBadName, app, path)
	}
	if !validName.MatchString(rest) {
		return "", fmt.Errorf("%w: %q must match [A-Za-z0-9_-]{1,64}", ErrBadName, rest)
	}
	return rest, nil
}

// conn is one RTMP connection.
type conn struct {
	srv  *Server
	ctx  context.Context // the server's: done when it shuts down
	nc   net.Conn
	log  *slog.Logger
	name string // set once reserved

	// addr is the client's address as MaxPendingPerAddr counts it; local
	// is set for a loopback one, which it does not bound.
	addr  string
	local bool

	// pending is set while c counts among the connections not publishing
	// yet; guarded by srv.mu.
	pending bool
	// evicted is set when the server closes the connection, not
	// publishing yet, to make room for a new one.
	evicted atomic.Bool

	// ending is closed once the publisher has gone and its stream is
	// closing; released once the connection has let go of its name.
	ending, released chan struct{}
	// lastRead is when bytes last came from the publisher, in Unix
	// nanoseconds.
	lastRead atomic.Int64
	// guard sees the client's bytes before the RTMP library; set by
	// runInner, used by Read.
	guard *chunkGuard
	// republished holds when the stream was last published anew, at most
	// maxRepublishes times; used by runInner's goroutine only.
	republished []time.Time
}

// silence returns how long the publisher has sent nothing.
func (c *conn) silence() time.Duration {
	return time.Since(time.Unix(0, c.lastRead.Load()))
}

func (c *conn) run() {
	defer c.srv.release(c)
	defer c.nc.Close()
	defer func() {
		// The RTMP and codec parsers are third-party code fed by the
		// network: a bug there must cost this connection, not the process.
		if p := recover(); p != nil {
			c.log.Error("rtmp connection panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()

	err := c.runInner()
	switch {
	case err == nil:
		c.log.Info("rtmp publisher finished")
	case c.name == "":
		c.srv.endPending(c, err)
	case errors.Is(err, ErrProtocol):
		c.srv.metrics.refused.WithLabelValues("protocol").Inc()
		c.log.Warn("rtmp connection closed: protocol violation", "reason", err)
	case isTimeout(err):
		// The publisher went silent: its stream ends, which viewers see.
		c.log.Warn("rtmp publisher timed out", "reason", err)
	default:
		c.log.Info("rtmp publisher disconnected", "reason", err)
	}
}

func (c *conn) runInner() error {
	timeout := c.srv.cfg.ReadTimeout
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.PublishTimeout))
	c.guard = newChunkGuard()

	// The library reads the connection itself until the client may
	// publish (it has a 4 KB buffer of its own), then through a buffer
	// that holds a whole video frame: one read system call per burst
	// instead of one per 4 KB. Connections that never publish do not
	// cost that buffer.
	in := &readerSwitch{r: c}
	sc := &gortmplib.ServerConn{RW: struct {
		io.Reader
		io.Writer
	}{in, c.nc}}
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := sc.Accept(); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if !sc.Publish {
		return c.refuse(sc, "NetStream.Play.Failed", ErrPlayUnsupported)
	}

	path, query := publishTarget(c.srv.cfg.App, sc.URL)
	name, err := ParseStreamPath(c.srv.cfg.App, path)
	if err != nil {
		return c.refuse(sc, "NetStream.Publish.BadName", err)
	}
	if err := c.authorize(name, query); err != nil {
		return c.refuse(sc, "NetStream.Publish.Unauthorized", err)
	}
	if !c.srv.reserve(name, c) {
		return c.refuse(sc, "NetStream.Publish.BadName", fmt.Errorf("%w: %s", ErrStreamBusy, name))
	}
	// Authorize and reserve may have waited: the publisher gets its full
	// timeout for what comes next.
	c.nc.SetDeadline(time.Now().Add(timeout))
	c.guard.publishing()
	in.r = bufio.NewReaderSize(c, 64<<10)
	c.name = name
	c.log = c.log.With("stream", name)
	c.log.Info("rtmp publisher connected")

	// gortmplib reads the first seconds of media to learn the tracks
	// (its analyze period): the stream's first frame arrived now.
	began := time.Now()
	r := &gortmplib.Reader{Conn: unpublishConn{sc}}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("read tracks: %w", err)
	}

	tracks, err := convertTracks(r.Tracks())
	if err != nil {
		return c.refuse(sc, "NetStream.Publish.Rejected", err)
	}
	sess, err := c.srv.cfg.Handler.Publish(name, tracks, began)
	if err != nil {
		return c.refuse(sc, "NetStream.Publish.Rejected", err)
	}
	// lost is set when the connection breaks or goes silent: the stream
	// waits for its publisher to come back.
	var lost bool
	defer func() { // the session of the moment; nil if publishing anew failed
		switch {
		case sess == nil:
		case lost:
			sess.Drop()
		default:
			sess.Close()
		}
	}()
	defer close(c.ending) // before sess.Close: its stream shows ended only after

	// The reader calls these from r.Read, on this goroutine. A callback
	// cannot return an error, so the first one is kept and ends the loop.
	var writeErr error
	video := func(i int, setup *videoSetup) func(pts, dts time.Duration, au [][]byte) {
		return func(pts, dts time.Duration, au [][]byte) {
			if writeErr != nil {
				return
			}
			changed, au := setup.check(au)
			if changed != nil {
				next := slices.Clone(tracks)
				next[i] = changed
				if sess, writeErr = c.republish(sess, tracks[i], next); writeErr != nil {
					return
				}
				tracks = next
			}
			if au != nil {
				writeErr = sess.WriteVideo(i, pts, dts, au)
			}
		}
	}
	for i, t := range r.Tracks() {
		switch t.Codec.(type) {
		case *rtmpcodecs.H264:
			r.OnDataH264(t, video(i, &videoSetup{cur: tracks[i]}))
		case *rtmpcodecs.H265:
			r.OnDataH265(t, video(i, &videoSetup{cur: tracks[i]}))
		case *rtmpcodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) {
				if writeErr == nil {
					writeErr = sess.WriteAudio(i, pts, au)
				}
			})
		}
	}

	var deadline time.Time
	lowat := lowatTuner{received: sc.BytesReceived()}
	for {
		// Both directions: reading also writes acknowledgements. Moving
		// the deadline costs system calls, so it moves once a second.
		if now := time.Now(); deadline.Sub(now) < timeout-time.Second {
			deadline = now.Add(timeout)
			c.nc.SetDeadline(deadline)
			if n, ok := lowat.update(now, sc.BytesReceived()); ok {
				setRcvLowat(c.nc, n)
			}
		}
		if err := r.Read(); err != nil {
			if errors.Is(err, errUnpublished) {
				return nil
			}
			lost = c.ctx.Err() == nil && !errors.Is(err, ErrProtocol)
			return fmt.Errorf("read: %w", err)
		}
		if writeErr != nil {
			return c.refuse(sc, "NetStream.Publish.Failed", writeErr)
		}
	}
}

// republish ends sess and publishes the stream anew with tracks, after
// the video setup changed from old to what tracks hold: players find the
// new setup under the stream's multivariant playlist and MPD, as after a
// reconnect with new settings. It returns the new session; on failure,
// the error and the session still to close (nil once sess is closed).
func (c *conn) republish(sess Session, old codecs.Codec, tracks []codecs.Codec) (Session, error) {
	var now codecs.Codec
	for _, t := range tracks {
		if t.IsVideo() {
			now = t
		}
	}
	// Each new epoch costs its viewers a restart (and a ladder its
	// ffmpeg): a publisher flipping setups over and over is refused.
	if len(c.republished) == maxRepublishes {
		if since := time.Since(c.republished[0]); since < republishWindow {
			return sess, fmt.Errorf("%w: video setup changed %d times in %v", ErrUnsupportedCodec, maxRepublishes+1, since.Round(time.Second))
		}
		c.republished = c.republished[1:]
	}
	c.republished = append(c.republished, time.Now())
	c.log.Info("video setup changed mid-stream: publishing the stream anew", "from", describe(old), "to", describe(now))
	c.srv.metrics.republished.Inc()
	// Dropped, not closed: the stream stays live until the new setup
	// takes over, so DASH players go on into its next Period.
	sess.Drop()
	next, err := c.srv.cfg.Handler.Publish(c.name, tracks, time.Now())
	if err != nil {
		return nil, fmt.Errorf("publish with the new video setup: %w", err)
	}
	return next, nil
}

// A publisher may change its video setup maxRepublishes times within
// republishWindow.
const (
	maxRepublishes  = 5
	republishWindow = time.Minute
)

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse tells the publisher why it is being dropped, with an onStatus
// error that ffmpeg and OBS print, and returns the reason.
func (c *conn) refuse(sc *gortmplib.ServerConn, code string, reason error) error {
	c.srv.metrics.refused.WithLabelValues(refusal(code, reason)).Inc()
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
	werr := sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{
			nil,
			amf0.Object{
				{Key: "level", Value: "error"},
				{Key: "code", Value: code},
				{Key: "description", Value: reason.Error()},
			},
		},
	})
	if werr != nil {
		return fmt.Errorf("%w (telling the publisher failed: %v)", reason, werr)
	}
	// Closing now would reset the connection while the publisher is still
	// sending, and a reset discards our message before it reads it (ffmpeg
	// reads server messages between its writes). So signal the end of our
	// side and drain what it sends until it hangs up, for a short while.
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(refuseLinger))
	io.Copy(io.Discard, io.LimitReader(c.nc, refuseDrainMax))
	return reason
}

// A refused publisher gets refuseLinger to read why, during which at most
// refuseDrainMax bytes it sends are read and dropped.
const (
	refuseLinger   = 3 * time.Second
	refuseDrainMax = 64 << 20
)

// convertTracks maps the announced tracks to the codecs we package: exactly
// one track of H.264 or H.265 video and at most one of AAC audio, or the
// other way round with audio only.
func convertTracks(in []*gortmplib.Track) ([]codecs.Codec, error) {
	var out []codecs.Codec
	var video, audio int
	for _, t := range in {
		if t == nil || t.Codec == nil {
			return nil, fmt.Errorf("%w: a track was announced without its configuration", ErrUnsupportedCodec)
		}
		switch c := t.Codec.(type) {
		case *rtmpcodecs.H264:
			video++
			out = append(out, &codecs.H264{SPS: c.SPS, PPS: c.PPS})
		case *rtmpcodecs.H265:
			video++
			out = append(out, &codecs.H265{VPS: c.VPS, SPS: c.SPS, PPS: c.PPS})
		case *rtmpcodecs.MPEG4Audio:
			if c.Config == nil {
				return nil, fmt.Errorf("%w: AAC track without AudioSpecificConfig", ErrUnsupportedCodec)
			}
			audio++
			out = append(out, &codecs.MPEG4Audio{Config: *c.Config})
		default:
			return nil, fmt.Errorf("%w: %s (supported: H.264, H.265, AAC)", ErrUnsupportedCodec, codecName(t.Codec))
		}
	}
	if video > 1 || audio > 1 {
		return nil, fmt.Errorf("%w: %d video and %d audio tracks (at most one of each)", ErrUnsupportedCodec, video, audio)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no tracks", ErrUnsupportedCodec)
	}
	return out, nil
}

func codecName(c rtmpcodecs.Codec) string {
	switch c.(type) {
	case *rtmpcodecs.AV1:
		return "AV1"
	case *rtmpcodecs.VP9:
		return "VP9"
	case *rtmpcodecs.Opus:
		return "Opus"
	case *rtmpcodecs.MPEG1Audio:
		return "MP3"
	case *rtmpcodecs.AC3:
		return "AC-3"
	case *rtmpcodecs.G711:
		return "G.711"
	case *rtmpcodecs.LPCM:
		return "LPCM"
	}
	return fmt.Sprintf("%T", c)
}

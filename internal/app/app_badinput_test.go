package app

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/handshake"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/publisher"
)

// lastSegment returns the newest segment number of stream's first rendition.
func (a *testApp) lastSegment(t *testing.T, name string) uint64 {
	t.Helper()
	s, ok := a.streams(t)[name]
	if !ok || len(s.Renditions) == 0 || s.Renditions[0].LastNumber == nil {
		t.Fatalf("stream %s has no segment", name)
	}
	return *s.Renditions[0].LastNumber
}

// TestBadPublishers sends a live server what real clients get wrong or
// malicious ones send on purpose. Each gets a clear error, and the stream
// already playing keeps producing segments throughout.
func TestBadPublishers(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	a := startApp(t, Config{Demo: true, Origin: origin.Config{Window: 10 * time.Second}, PoP: &pop.Config{}})
	a.waitLive(t, DemoStream, 15*time.Second)
	before := a.lastSegment(t, DemoStream)

	publish := func(name string, seconds int, extra ...string) (string, error) {
		args := ffmpegSource(a.rtmp+name, seconds, extra...)
		return runCmd(context.Background(), 30*time.Second, ffmpeg, args...)
	}

	t.Run("bad name", func(t *testing.T) {
		for _, name := range []string{"bad!name", strings.Repeat("x", 65), "a/b"} {
			out, err := publish(name, 2, x264GOP1s...)
			if err == nil || !strings.Contains(out, "invalid stream name") {
				t.Errorf("publish %q: err %v, output:\n%s", name, err, out)
			}
		}
	})

	t.Run("unsupported codec", func(t *testing.T) {
		out, err := publish("mp3", 4, append(append([]string{}, x264GOP1s...), "-c:a", "libmp3lame")...)
		if err == nil || !strings.Contains(out, "unsupported codec: MP3") {
			t.Errorf("err %v, output:\n%s", err, out)
		}
		if _, ok := a.streams(t)["mp3"]; ok {
			t.Errorf("refused stream is listed")
		}
	})

	t.Run("duplicate publisher", func(t *testing.T) {
		first := make(chan error, 1)
		go func() {
			out, err := publish("dup", 8, append(append([]string{}, x264GOP1s...), "-c:a", "aac")...)
			if err != nil {
				err = errors.Join(err, errors.New(out))
			}
			first <- err
		}()
		a.waitLive(t, "dup", 15*time.Second)
		out, err := publish("dup", 2, append(append([]string{}, x264GOP1s...), "-c:a", "aac")...)
		if err == nil || !strings.Contains(out, "already being published") {
			t.Errorf("second publisher: err %v, output:\n%s", err, out)
		}
		if err := <-first; err != nil {
			t.Errorf("first publisher was disturbed: %v", err)
		}
	})

	t.Run("garbage after handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", a.RTMPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(15 * time.Second))
		if _, _, err := handshake.DoClient(conn, false, false); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		junk := make([]byte, 64<<10)
		rand.Read(junk)
		conn.Write(junk) // the server may close before reading it all
		// The server must drop the connection, not hang on it.
		if _, err := io.Copy(io.Discard, conn); err != nil && !isConnClosed(err) {
			t.Errorf("connection not closed by the server: %v", err)
		}
	})

	t.Run("playback request", func(t *testing.T) {
		out, err := runCmd(context.Background(), 30*time.Second, ffmpeg, "-hide_banner", "-nostdin",
			"-i", a.rtmp+DemoStream, "-t", "1", "-f", "null", "-")
		if err == nil || !strings.Contains(out, "playback over RTMP is not supported") {
			t.Errorf("err %v, output:\n%s", err, out)
		}
	})

	t.Run("refusal reaches our publisher", func(t *testing.T) {
		clip, err := publisher.LoadClip(democlip.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// A publisher with a name the server must refuse, via our own client:
		// the refusal reaches it as an error naming the reason.
		err = publisher.Publish(context.Background(), publisher.Config{
			URL: a.rtmp + "no..dots", Clip: clip, Speed: -1, Loops: 1,
		})
		if err == nil || !strings.Contains(err.Error(), "invalid stream name") {
			t.Errorf("publish: %v", err)
		}
	})

	// The demo stream went on all along.
	waitFor(t, 10*time.Second, "the demo stream to go on", func() bool {
		return a.lastSegment(t, DemoStream) > before+2
	})
	if s := a.streams(t)[DemoStream]; !s.Live {
		t.Errorf("demo stream is not live any more")
	}
}

// isConnClosed reports whether err is how a closed or reset connection
// shows up on read.
func isConnClosed(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// pubTimeout bounds every wait in these tests, so that a bug fails them
// instead of hanging them.
const pubTimeout = 20 * time.Second

// pubStartServer starts a minimal RTMP server on 127.0.0.1:0 that accepts
// publishers and hands each one to handle. It returns the URL to publish to;
// the server stops, and its goroutines are waited for, when the test ends.
func pubStartServer(t *testing.T, handle func(sc *gortmplib.ServerConn, nc net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				if err := nc.SetDeadline(time.Now().Add(pubTimeout)); err != nil {
					return
				}
				sc := &gortmplib.ServerConn{RW: nc}
				if err := sc.Initialize(); err != nil {
					return
				}
				if err := sc.Accept(); err != nil || !sc.Publish {
					return
				}
				handle(sc, nc)
			})
		}
	})
	return "rtmp://" + ln.Addr().String() + "/live/test"
}

// pubReceived is what a collecting server got from one publisher.
type pubReceived struct {
	tracks   []*gortmplib.Track
	videoDTS []time.Duration
	audioPTS []time.Duration
	err      error
}

// pubCollect reads a publisher's stream the way gortmplib's example server
// does, and sends what it got on out (buffered) when the publisher leaves.
func pubCollect(out chan<- pubReceived) func(*gortmplib.ServerConn, net.Conn) {
	return func(sc *gortmplib.ServerConn, nc net.Conn) {
		var got pubReceived
		defer func() { out <- got }()
		r := &gortmplib.Reader{Conn: sc}
		if got.err = r.Initialize(); got.err != nil {
			return
		}
		got.tracks = r.Tracks()
		for _, track := range got.tracks {
			switch track.Codec.(type) {
			case *codecs.H264:
				r.OnDataH264(track, func(_, dts time.Duration, au [][]byte) {
					if !pubIsParamSets(au) { // the Reader replays the config too
						got.videoDTS = append(got.videoDTS, dts)
					}
				})
			case *codecs.MPEG4Audio:
				r.OnDataMPEG4Audio(track, func(pts time.Duration, _ []byte) {
					got.audioPTS = append(got.audioPTS, pts)
				})
			default:
				got.err = fmt.Errorf("unexpected track %T", track.Codec)
				return
			}
		}
		for {
			if got.err = nc.SetReadDeadline(time.Now().Add(pubTimeout)); got.err != nil {
				return
			}
			if err := r.Read(); err != nil {
				if !errors.Is(err, io.EOF) {
					got.err = err
				}
				return
			}
		}
	}
}

// pubIsParamSets reports whether au holds only SPS and PPS.
func pubIsParamSets(au [][]byte) bool {
	for _, nalu := range au {
		if typ := h264.NALUType(nalu[0] & 0x1f); typ != h264.NALUTypeSPS && typ != h264.NALUTypePPS {
			return false
		}
	}
	return true
}

// pubReject refuses the stream as ingest's server does: an onStatus error,
// then the connection is closed.
func pubReject(sc *gortmplib.ServerConn) {
	_ = sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{
			nil,
			amf0.Object{
				{Key: "level", Value: "error"},
				{Key: "code", Value: "NetStream.Publish.BadName"},
				{Key: "description", Value: "stream name is taken"},
			},
		},
	})
}

// pubAwaitVideo reads messages until the first video access unit.
func pubAwaitVideo(sc *gortmplib.ServerConn) error {
	for {
		msg, err := sc.Read()
		if err != nil {
			return err
		}
		if v, ok := msg.(*message.Video); ok && v.Type == message.VideoTypeAU {
			return nil
		}
	}
}

func TestPublishLoops(t *testing.T) {
	clip := clipLoadDemo(t)
	got := make(chan pubReceived, 1)
	url := pubStartServer(t, pubCollect(got))
	ctx, cancel := context.WithTimeout(t.Context(), pubTimeout)
	defer cancel()

	const loops = 2
	if err := Publish(ctx, Config{URL: url, Clip: clip, Loops: loops, Speed: -1}); err != nil {
		t.Fatal(err)
	}
	var r pubReceived
	select {
	case r = <-got:
	case <-ctx.Done():
		t.Fatal("the server did not see the publisher leave")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.tracks) != 2 {
		t.Fatalf("server saw %d tracks, want 2", len(r.tracks))
	}

	for _, tc := range []struct {
		name  string
		track int
		times []time.Duration
	}{
		{"video", 0, r.videoDTS},
		{"audio", 1, r.audioPTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perLoop := len(clipTrackSamples(clip, tc.track))
			if len(tc.times) != loops*perLoop {
				t.Fatalf("server got %d frames, want %d", len(tc.times), loops*perLoop)
			}
			for i := 1; i < len(tc.times); i++ {
				if tc.times[i] <= tc.times[i-1] {
					t.Fatalf("frame %d: DTS %v not after %v", i, tc.times[i], tc.times[i-1])
				}
			}
			// RTMP carries milliseconds.
			if d := tc.times[perLoop] - tc.times[0] - clip.Duration; d.Abs() > time.Millisecond {
				t.Errorf("second loop starts %v after the first, want %v", tc.times[perLoop]-tc.times[0], clip.Duration)
			}
		})
	}
}

func TestPublishCancel(t *testing.T) {
	clip := clipLoadDemo(t)
	sending := make(chan struct{})
	url := pubStartServer(t, func(sc *gortmplib.ServerConn, _ net.Conn) {
		if pubAwaitVideo(sc) != nil {
			return
		}
		close(sending)
		for {
			if _, err := sc.Read(); err != nil {
				return
			}
		}
	})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		done <- Publish(ctx, Config{URL: url, Clip: clip}) // real time, forever
	})

	timeout := time.NewTimer(pubTimeout)
	defer timeout.Stop()
	select {
	case <-sending:
	case err := <-done:
		t.Fatalf("Publish returned early: %v", err)
	case <-timeout.C:
		t.Fatal("no video reached the server")
	}
	cancel()
	prompt := time.NewTimer(2 * time.Second)
	defer prompt.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Publish returned %v, want context.Canceled", err)
		}
	case <-prompt.C:
		t.Fatal("Publish did not return within 2s of the cancellation")
	}
}

func TestPublishRejected(t *testing.T) {
	clip := clipLoadDemo(t)
	for _, tc := range []struct {
		name  string
		speed float64
		serve func(sc *gortmplib.ServerConn, nc net.Conn)
	}{
		{"at once", 1, func(sc *gortmplib.ServerConn, _ net.Conn) {
			pubReject(sc)
		}},
		{"after media, while paced", 1, func(sc *gortmplib.ServerConn, _ net.Conn) {
			if pubAwaitVideo(sc) == nil {
				pubReject(sc)
			}
		}},
		{"after media, while flooding", -1, func(sc *gortmplib.ServerConn, _ net.Conn) {
			if pubAwaitVideo(sc) == nil {
				pubReject(sc)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pubStartServer(t, tc.serve)
			ctx, cancel := context.WithTimeout(t.Context(), pubTimeout)
			defer cancel()
			err := Publish(ctx, Config{URL: url, Clip: clip, Speed: tc.speed})
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "stream name is taken") {
				t.Fatalf("Publish returned %v, want the server's refusal", err)
			}
		})
	}
}

func TestPublishConfig(t *testing.T) {
	clip := clipLoadDemo(t)
	badTrack := *clip
	badTrack.Samples = append([]ClipSample{{Track: 7}}, clip.Samples...)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URL", Config{Clip: clip}, "no URL"},
		{"bad scheme", Config{URL: "http://127.0.0.1/live/x", Clip: clip}, "scheme"},
		{"no clip", Config{URL: "rtmp://127.0.0.1/live/x"}, "no clip"},
		{"empty clip", Config{URL: "rtmp://127.0.0.1/live/x", Clip: &Clip{}}, "empty clip"},
		{"bad track", Config{URL: "rtmp://127.0.0.1/live/x", Clip: &badTrack}, "no track 7"},
		{"negative loops", Config{URL: "rtmp://127.0.0.1/live/x", Clip: clip, Loops: -1}, "loop"},
		{"NaN speed", Config{URL: "rtmp://127.0.0.1/live/x", Clip: clip, Speed: math.NaN()}, "NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Publish(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Publish returned %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestLoopSchedule(t *testing.T) {
	ms := time.Millisecond
	// Track 1 starts late: with a 30 ms duration (its span), its last
	// sample comes after the next loop's first one of track 0.
	samples := []ClipSample{
		{Track: 0, DTS: 0}, {Track: 0, DTS: 10 * ms},
		{Track: 1, DTS: 15 * ms}, {Track: 1, DTS: 25 * ms}, {Track: 1, DTS: 35 * ms},
	}
	for _, tc := range []struct {
		name  string
		loops int
		take  int
		want  []time.Duration
	}{
		{"once", 1, 10, []time.Duration{0, 10 * ms, 15 * ms, 25 * ms, 35 * ms}},
		{"twice", 2, 20, []time.Duration{0, 10 * ms, 15 * ms, 25 * ms, 30 * ms, 35 * ms, 40 * ms, 45 * ms, 55 * ms, 65 * ms}},
		{"forever", 0, 12, []time.Duration{0, 10 * ms, 15 * ms, 25 * ms, 30 * ms, 35 * ms, 40 * ms, 45 * ms, 55 * ms, 60 * ms, 65 * ms, 70 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loopSchedule{samples: samples, duration: 30 * ms, loops: tc.loops}
			var got []time.Duration
			for len(got) < tc.take {
				smp, loop, ok := s.next()
				if !ok {
					break
				}
				got = append(got, smp.DTS+time.Duration(loop)*s.duration)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

package ingest

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/publisher"
)

// Parameter sets of ffmpeg -f lavfi -i testsrc2=size=WxH -c:v libx264
// -profile:v high, and of x265 and mp4ff's examples for H.265.
const (
	sps360   = "6764001eacd940a02ff970110000030001000003003c0f162d96"
	pps360   = "68ebe3cb22c0"
	sps720   = "6764001facd9405005bb0110000003001000000303c0f1831960"
	pps720   = "68ebe3cb22c0"
	sps360zl = "6764001eacb201405ff2e022000003000200000300791e2c5c90" // -tune zerolatency: same profile, level and size
	pps360zl = "68ebc3cb22c0"

	vps265a = "40010c01ffff01600000030090000003000003005d959809"
	sps265a = "42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003c10"
	pps265a = "4401c172b46240"
	vps265b = "40010c01ffff022000000300b0000003000003007b18b024"
	sps265b = "420101022000000300b0000003000003007ba0078200887db6718b92448053888892cf24a69272c9124922dc91aa48fca223ff000100016a02020201"
	pps265b = "4401c0252f053240"
)

// TestVideoSetup: which access units publish the stream anew, and what
// is written, for parameter sets in-band and in sequence headers.
func TestVideoSetup(t *testing.T) {
	h := func(s string) []byte { return mustHex(t, s) }
	idr, frame := []byte{0x65, 0x88, 0x84}, []byte{0x41, 0x9a, 0x02}
	irap, trail := []byte{0x26, 0x01, 0xaf}, []byte{0x02, 0x01, 0xd0}
	avc360 := &codecs.H264{SPS: h(sps360), PPS: h(pps360)}
	avc720 := &codecs.H264{SPS: h(sps720), PPS: h(pps720)}
	hevcA := &codecs.H265{VPS: h(vps265a), SPS: h(sps265a), PPS: h(pps265a)}
	hevcB := &codecs.H265{VPS: h(vps265b), SPS: h(sps265b), PPS: h(pps265b)}

	type step struct {
		au      [][]byte
		changed codecs.Codec // nil: none
		out     [][]byte
	}
	for _, tc := range []struct {
		name  string
		cur   codecs.Codec
		steps []step
	}{
		{"frames without sets", avc360, []step{
			{[][]byte{idr}, nil, [][]byte{idr}},
			{[][]byte{frame}, nil, [][]byte{frame}},
		}},
		{"the session's sets in-band", avc360, []step{
			{[][]byte{h(sps360), h(pps360), idr}, nil, [][]byte{h(sps360), h(pps360), idr}},
		}},
		{"the session's sets in a sequence header", avc360, []step{
			{[][]byte{h(sps360), h(pps360)}, nil, [][]byte{h(sps360), h(pps360)}},
			{[][]byte{idr}, nil, [][]byte{idr}},
		}},
		{"a new size in-band", avc360, []step{
			{[][]byte{frame}, nil, [][]byte{frame}},
			{[][]byte{h(sps720), h(pps720), idr}, avc720, [][]byte{h(sps720), h(pps720), idr}},
			{[][]byte{h(sps720), h(pps720), idr}, nil, [][]byte{h(sps720), h(pps720), idr}},
		}},
		{"a new size in a sequence header", avc360, []step{
			{[][]byte{h(sps720), h(pps720)}, avc720, nil},
			{[][]byte{idr}, nil, [][]byte{idr}},
		}},
		{"a new SPS only, in-band", avc360, []step{
			{[][]byte{h(sps720), idr}, &codecs.H264{SPS: h(sps720), PPS: h(pps360)}, [][]byte{h(sps720), idr}},
		}},
		{"other sets of the same setup in-band go in the sample", avc360, []step{
			{[][]byte{h(sps360zl), h(pps360zl), idr}, nil, [][]byte{h(sps360zl), h(pps360zl), idr}},
		}},
		{"other sets of the same setup in a sequence header go into the next keyframe", avc360, []step{
			{[][]byte{h(sps360zl), h(pps360zl)}, nil, nil},
			{[][]byte{frame}, nil, [][]byte{frame}},
			{[][]byte{idr}, nil, [][]byte{h(sps360zl), h(pps360zl), idr}},
			{[][]byte{idr}, nil, [][]byte{idr}},
		}},
		{"a sequence header taken back before its keyframe", avc360, []step{
			{[][]byte{h(sps360zl), h(pps360zl)}, nil, nil},
			{[][]byte{h(sps360), h(pps360)}, nil, [][]byte{h(sps360), h(pps360)}},
			{[][]byte{idr}, nil, [][]byte{idr}},
		}},
		{"an SPS that does not parse is not a new setup", avc360, []step{
			{[][]byte{{0x67, 0xff}, idr}, nil, [][]byte{{0x67, 0xff}, idr}},
		}},
		{"H.265: the session's sets in-band", hevcA, []step{
			{[][]byte{h(vps265a), h(sps265a), h(pps265a), irap}, nil, [][]byte{h(vps265a), h(sps265a), h(pps265a), irap}},
			{[][]byte{trail}, nil, [][]byte{trail}},
		}},
		{"H.265: a new setup in a sequence header", hevcA, []step{
			{[][]byte{trail}, nil, [][]byte{trail}},
			{[][]byte{h(vps265b), h(sps265b), h(pps265b)}, hevcB, nil},
			{[][]byte{irap}, nil, [][]byte{irap}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &videoSetup{cur: tc.cur}
			for i, s := range tc.steps {
				changed, out := v.check(s.au)
				if !reflect.DeepEqual(changed, s.changed) {
					t.Errorf("step %d: changed to %v, want %v", i, describeOrNil(changed), describeOrNil(s.changed))
				}
				if !reflect.DeepEqual(out, s.out) {
					t.Errorf("step %d: wrote %x, want %x", i, out, s.out)
				}
			}
		})
	}
}

func describeOrNil(c codecs.Codec) string {
	if c == nil {
		return "nothing"
	}
	return describe(c)
}

// FuzzVideoSetup feeds access units of arbitrary NAL units, as a
// publisher may send, to a videoSetup: it must not panic, write what it
// was given (with a sequence header's sets at most in front), and publish
// anew only with sets that describe a setup.
func FuzzVideoSetup(f *testing.F) {
	f.Add(false, []byte{0x67}, []byte{0x68}, []byte{0x65})
	sps, _ := hex.DecodeString(sps720)
	f.Add(false, sps, []byte{0x68, 0xeb}, []byte{0x65, 0x88})
	vps, _ := hex.DecodeString(vps265b)
	f.Add(true, vps, []byte{0x42, 0x01}, []byte{0x26, 0x01})
	f.Fuzz(func(t *testing.T, hevc bool, a, b, c []byte) {
		var cur codecs.Codec
		if hevc {
			cur = &codecs.H265{VPS: mustHex(t, vps265a), SPS: mustHex(t, sps265a), PPS: mustHex(t, pps265a)}
		} else {
			cur = &codecs.H264{SPS: mustHex(t, sps360), PPS: mustHex(t, pps360)}
		}
		v := &videoSetup{cur: cur}
		for _, au := range [][][]byte{{a, b}, {c}, {a, b, c}, {c, a}} {
			changed, out := v.check(au)
			if changed != nil && describe(changed) == "" {
				t.Fatalf("published anew with sets that do not parse: %x", paramSets(changed))
			}
			if out != nil && !reflect.DeepEqual(out[len(out)-len(au):], au) {
				t.Fatalf("wrote %x for %x", out, au)
			}
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSetupFlipsRefused: a publisher whose video setup flips at every
// keyframe is published anew maxRepublishes times, then refused (each new
// epoch restarts its viewers, and a ladder's ffmpeg), with the reason
// counted; the server goes on.
func TestSetupFlipsRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := &countingHandler{}
	if err := publishFlips(t, h, reg, nil); !errors.Is(err, publisher.ErrRejected) {
		t.Fatalf("the flipping publisher: %v, want a refusal", err)
	}
	h.mu.Lock()
	publishes, drops, closes := h.publishes, h.drops, h.closes
	h.mu.Unlock()
	if publishes != 1+maxRepublishes {
		t.Errorf("published %d times, want %d", publishes, 1+maxRepublishes)
	}
	// Each setup change drops the session, so that the stream stays live
	// until the next one takes over; the refusal ends the last.
	if drops != maxRepublishes || closes != 1 {
		t.Errorf("%d sessions dropped and %d closed, want %d and 1", drops, closes, maxRepublishes)
	}
	if n := metricValue(t, reg, "live_ingest_republished_total"); n != maxRepublishes {
		t.Errorf("live_ingest_republished_total = %v, want %d", n, maxRepublishes)
	}
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "codec"); n != 1 {
		t.Errorf("refused{reason=codec} = %v, want 1", n)
	}
}

// TestRepublishRefused: a handler refusing the stream's new setup ends
// the publisher with a refusal, counted, and the connection closes
// cleanly with no session left to close.
func TestRepublishRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := &refusingHandler{}
	events := logtest.New(64)
	if err := publishFlips(t, h, reg, slog.New(events)); !errors.Is(err, publisher.ErrRejected) {
		t.Fatalf("publisher: %v, want a refusal", err)
	}
	// Not "rtmp connection panicked", closing a session that is gone.
	events.Await(t, "rtmp publisher disconnected")
	h.mu.Lock()
	asked := h.asked
	h.mu.Unlock()
	if asked != 2 {
		t.Errorf("asked to publish %d times, want 2", asked)
	}
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "failed"); n != 1 {
		t.Errorf("refused{reason=failed} = %v, want 1", n)
	}
}

// refusingHandler accepts the first stream and refuses the others.
type refusingHandler struct {
	countingHandler
	asked int // guarded by countingHandler.mu
}

func (h *refusingHandler) Publish(name string, tracks []codecs.Codec, began time.Time) (Session, error) {
	h.mu.Lock()
	h.asked++
	first := h.asked == 1
	h.mu.Unlock()
	if !first {
		return nil, errors.New("no room for it")
	}
	return h.countingHandler.Publish(name, tracks, began)
}

// publishFlips publishes, as fast as it goes, 20 s of video whose picture
// size flips at every keyframe (once a second, the sets in-band) to a
// server with handler h, and returns how the publisher ended.
func publishFlips(t *testing.T, h Handler, reg *prometheus.Registry, log *slog.Logger) error {
	t.Helper()
	sets := [2]*rtmpcodecs.H264{
		{SPS: mustHex(t, sps360), PPS: mustHex(t, pps360)},
		{SPS: mustHex(t, sps720), PPS: mustHex(t, pps720)},
	}
	clip := &publisher.Clip{Tracks: []*gortmplib.Track{{Codec: sets[0]}}, Duration: 20 * time.Second}
	for i := range 20 * 30 {
		s := publisher.ClipSample{PTS: time.Duration(i) * time.Second / 30, NALUs: [][]byte{{0x41, 0x9a, 0x02}}}
		s.DTS = s.PTS
		if i%30 == 0 { // a keyframe a second, with the other size's sets in-band
			c := sets[i/30%2]
			s.NALUs, s.Key = [][]byte{c.SPS, c.PPS, {0x65, 0x88, 0x84}}, true
		}
		clip.Samples = append(clip.Samples, s)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Handler: h, Registerer: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	return publisher.Publish(context.Background(), publisher.Config{URL: "rtmp://" + srv.Addr().String() + "/live/flip", Clip: clip, Loops: 1, Speed: -1})
}

package origin

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// audioPublisher publishes AAC frames (1024 samples at 48 kHz) to a stream
// of an origin served on loopback.
type audioPublisher struct {
	t    *testing.T
	srv  *Server
	sess *Session
	base string // http://HOST/live/NAME/EPOCH/a0/
	next int    // the next frame
}

func startAudio(t *testing.T, cfg Config) *audioPublisher {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	sess, err := srv.Publish("s", []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return &audioPublisher{t: t, srv: srv, sess: sess, base: ts.URL + "/live/s/" + srv.stream("s").epoch + "/a0/"}
}

// until writes frames up to media time d.
func (p *audioPublisher) until(d time.Duration) {
	p.t.Helper()
	for ; ; p.next++ {
		pts := time.Duration(p.next) * 1024 * time.Second / 48000
		if pts >= d {
			return
		}
		if err := p.sess.WriteAudio(0, pts, bytes.Repeat([]byte{byte(p.next)}, 300)); err != nil {
			p.t.Fatal(err)
		}
	}
}

// streaming returns how many bytes of segment n are packaged so far.
func (p *audioPublisher) streaming(n uint64) int {
	part := p.srv.stream("s").snap.Load().rendition("a0").partial
	if part == nil || part.number != n {
		p.t.Fatalf("segment %d is not the one being produced", n)
	}
	b, _, _, _ := part.Next(0)
	return len(b)
}

// TestStreamedSegment: a GET held for the segment being produced gets its
// chunks as they are packaged, with the headers the complete segment has
// (but the length), and in the end exactly the segment's bytes. A HEAD for
// it still waits for the complete segment.
func TestStreamedSegment(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := startAudio(t, Config{Registerer: reg})
	p.until(1600 * time.Millisecond) // segment 0 done; two chunks of segment 1

	resp, err := http.Get(p.base + "1.m4s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 || resp.Header.Get("ETag") == "" {
		t.Fatalf("streamed segment: %s, length %d, ETag %q", resp.Status, resp.ContentLength, resp.Header.Get("ETag"))
	}
	sofar := p.streaming(1)
	if sofar == 0 {
		t.Fatal("no chunk of segment 1 packaged yet")
	}
	first := make([]byte, sofar)
	if _, err := io.ReadFull(resp.Body, first); err != nil { // before the segment is complete
		t.Fatalf("the chunks packaged so far: %v", err)
	}
	head := make(chan *http.Response, 1)
	go func() {
		r, err := http.Head(p.base + "1.m4s")
		if err != nil {
			t.Error(err)
		}
		head <- r
	}()

	p.until(2100 * time.Millisecond) // segment 1 complete
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := http.Get(p.base + "1.m4s")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(whole.Body)
	whole.Body.Close()
	if got := append(first, rest...); !bytes.Equal(got, want) || len(rest) == 0 {
		t.Errorf("streamed %d+%d bytes, the complete segment has %d (equal: %v)", len(first), len(rest), len(want), bytes.Equal(got, want))
	}
	for _, h := range []string{"ETag", "Content-Type", "Cache-Control", "Last-Modified"} {
		if resp.Header.Get(h) != whole.Header.Get(h) {
			t.Errorf("%s: streamed %q, complete %q", h, resp.Header.Get(h), whole.Header.Get(h))
		}
	}
	if r := <-head; r == nil || r.StatusCode != http.StatusOK || r.ContentLength != int64(len(want)) {
		t.Errorf("HEAD of the segment being produced: %+v, want 200 with the complete length %d", r, len(want))
	}
	var m dto.Metric
	if err := p.srv.metrics.streamed.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("live_origin_segments_streamed_total = %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
}

// TestStreamedSegmentStalls: when the segment being streamed stops growing
// (the publisher stalls) for three segment durations, the response is
// aborted, not ended: a cache must not take the chunks for the segment.
func TestStreamedSegmentStalls(t *testing.T) {
	p := startAudio(t, Config{SegmentDuration: 500 * time.Millisecond, Window: 3 * time.Second})
	p.until(800 * time.Millisecond) // segment 0 done; a chunk of segment 1
	resp, err := http.Get(p.base + "1.m4s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d bytes, then %v; want the response aborted", len(got), err)
	}
	if len(got) != p.streaming(1) {
		t.Errorf("got %d bytes before the abort, %d were packaged", len(got), p.streaming(1))
	}
}

// A partial, given the segment so far after each chunk, gives readers
// each chunk once, in order, and says whether it completed as the segment
// it stands for.
func TestPartial(t *testing.T) {
	for _, tc := range []struct {
		name     string
		chunks   []string
		segment  string
		complete bool
	}{
		{"complete", []string{"ab", "cd"}, "abcd", true},
		{"a chunk missing", []string{"ab"}, "abcd", false},
		{"abandoned", []string{"ab"}, "", false},
	} {
		p := newPartial(7)
		var read, soFar []byte
		for _, c := range tc.chunks {
			soFar = append(soFar, c...)
			p.add(soFar)
			b, done, _, _ := p.Next(len(read))
			if done || string(b) != c {
				t.Errorf("%s: after %q read %q (done %v)", tc.name, c, b, done)
			}
			read = append(read, b...)
		}
		if tc.segment != "" {
			p.finish([]byte(tc.segment))
		} else {
			p.end(false)
		}
		p.add(append(soFar, "late"...))
		b, done, err, _ := p.Next(len(read))
		if len(b) != 0 || !done || (err == nil) != tc.complete {
			t.Errorf("%s: at the end %q, done %v, error %v; want nothing more, done, complete %v", tc.name, b, done, err, tc.complete)
		}
	}
}

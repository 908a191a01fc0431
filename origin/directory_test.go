package origin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/publisher"
)

// memDirectory agrees on epochs in memory, as package directory does on
// etcd: the first origin of a stream makes its epoch, the others adopt it
// when their setup is the same.
type memDirectory struct {
	mu      sync.Mutex
	epochs  map[string][2]string // name -> epoch, fingerprint
	serving map[string]string    // name -> epoch last said
}

func newMemDirectory() *memDirectory {
	return &memDirectory{epochs: map[string][2]string{}, serving: map[string]string{}}
}

func (d *memDirectory) AgreeEpoch(_ context.Context, name, fp, proposed string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.epochs[name]; ok {
		if e[1] != fp {
			return "", ErrSetupMismatch
		}
		return e[0], nil
	}
	d.epochs[name] = [2]string{proposed, fp}
	return proposed, nil
}

func (d *memDirectory) Serving(name, epoch string, _ uint64) {
	d.mu.Lock()
	d.serving[name] = epoch
	d.mu.Unlock()
}

func (d *memDirectory) Placement(name string) (streaminfo.Placement, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.serving[name] == "" {
		return streaminfo.Placement{}, false
	}
	return streaminfo.Placement{Origin: "mem", Role: "primary"}, true
}

// clipTracks turns the demo clip's tracks into the origin's codecs, as
// ingest does.
func clipTracks(t *testing.T, c *publisher.Clip) []codecs.Codec {
	t.Helper()
	var out []codecs.Codec
	for _, tr := range c.Tracks {
		switch c := tr.Codec.(type) {
		case *rtmpcodecs.H264:
			out = append(out, &codecs.H264{SPS: c.SPS, PPS: c.PPS})
		case *rtmpcodecs.MPEG4Audio:
			out = append(out, &codecs.MPEG4Audio{Config: *c.Config})
		default:
			t.Fatalf("codec %T", c)
		}
	}
	return out
}

// TestDualIngestIdentical: two origins fed the same publisher's access
// units (dual hot ingest), sharing a directory, make the same epoch and
// byte-identical init segments and segments, so that a PoP can go on
// from one to the other at any byte. A third with another setup is
// refused.
func TestDualIngestIdentical(t *testing.T) {
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	dir := newMemDirectory()
	var servers [2]*Server
	var sessions [2]*Session
	for i := range servers {
		if servers[i], err = New(Config{Window: time.Minute, Directory: dir}); err != nil {
			t.Fatal(err)
		}
		defer servers[i].Close()
		if sessions[i], err = servers[i].Publish("dual", clipTracks(t, clip)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The second origin publishes a millisecond later at least:
			// without the directory, its epoch would differ.
			for ms := time.Now().UnixMilli(); time.Now().UnixMilli() == ms; {
			}
		}
	}
	for loop := range 4 { // 24 s of media
		off := time.Duration(loop) * clip.Duration
		for _, smp := range clip.Samples {
			for _, sess := range sessions {
				var err error
				if smp.NALUs != nil {
					err = sess.WriteVideo(smp.Track, smp.PTS+off, smp.DTS+off, smp.NALUs)
				} else {
					err = sess.WriteAudio(smp.Track, smp.PTS+off, smp.AU)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	a, b := servers[0].stream("dual"), servers[1].stream("dual")
	if a.epoch != b.epoch {
		t.Fatalf("epochs %s and %s", a.epoch, b.epoch)
	}
	// /api/streams says where the stream lives.
	if si := servers[0].Streams(); len(si) != 1 || len(si[0].Fleet) != 1 || si[0].Fleet[0] != (streaminfo.Placement{Origin: "mem", Role: "primary", Epoch: a.epoch}) {
		t.Errorf("Streams: %+v", si)
	}
	prefix := "/live/dual/" + a.epoch + "/"
	compared := 0
	for _, r := range a.snap.Load().renditions {
		paths := []string{prefix + r.id + "/init.mp4"}
		for _, e := range r.entries {
			paths = append(paths, prefix+r.id+"/"+strconv.FormatUint(e.seg.Number, 10)+".m4s")
		}
		if len(paths) < 20 {
			t.Errorf("%s: %d segments", r.id, len(paths)-1)
		}
		for _, p := range paths {
			ca, ba := fetch(servers[0], p)
			cb, bb := fetch(servers[1], p)
			if ca != http.StatusOK || cb != http.StatusOK || string(ba) != string(bb) {
				t.Errorf("%s: %d, %d bytes and %d, %d bytes: not identical", p, ca, len(ba), cb, len(bb))
			}
			compared++
		}
	}
	t.Logf("%d files identical on both origins", compared)

	// Another setup under the same name is refused while it is served.
	third, err := New(Config{Window: time.Minute, Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	other := []codecs.Codec{&codecs.MPEG4Audio{Config: *clip.Tracks[1].Codec.(*rtmpcodecs.MPEG4Audio).Config}}
	if _, err := third.Publish("dual", other); !errors.Is(err, ErrSetupMismatch) {
		t.Errorf("another setup: %v, want ErrSetupMismatch", err)
	}
}

package origin

import (
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/packager"
)

// track builds a rendition with one segment from 0 to end, in ticks of ts.
func track(id string, ladder, video bool, ts uint32, end time.Duration) *rendition {
	r := &rendition{id: id, ladder: ladder, info: packager.Info{Video: video, Timescale: ts}}
	r.entries = []*entry{{listed: true, seg: &packager.Segment{Duration: mediatime.Ticks(end, ts), Timescale: ts}}}
	return r
}

func TestMarkStall(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name       string
		renditions []*rendition
		ended      bool
		base       time.Duration            // where the publisher's session began
		want       map[string]time.Duration // the stalled ones
	}{
		{"keeping up", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 11*s), track("v2", true, true, 90000, 10*s),
		}, false, 0, nil},
		{"one rung behind", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 11*s), track("v2", true, true, 90000, 6*s),
		}, false, 0, map[string]time.Duration{"v2": 6 * s}},
		{"exactly stallAfter behind", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 7*s),
		}, false, 0, nil},
		{"other timescales", []*rendition{
			track("v0", false, true, 1000, 12*s), track("v1", true, true, 15360, 5*s), track("v2", true, true, 90000, 8*s),
		}, false, 0, map[string]time.Duration{"v1": 7 * s}},
		{"audio ahead does not count", []*rendition{
			track("v0", false, true, 90000, 4*s), track("a0", false, false, 48000, 20*s), track("v1", true, true, 90000, 3*s),
		}, false, 0, nil},
		{"the newest source counts", []*rendition{
			track("v0", false, true, 90000, 3*s), track("v1", false, true, 90000, 12*s), track("v2", true, true, 90000, 3*s),
		}, false, 0, map[string]time.Duration{"v2": 9 * s}},
		{"rung without segments", []*rendition{
			track("v0", false, true, 90000, 12*s), {id: "v1", ladder: true, info: packager.Info{Video: true, Timescale: 90000}},
		}, false, 0, nil},
		{"resumed 8 s after the rung's last segment, 2 s ago", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 2*s),
		}, false, 10 * s, nil},
		{"resumed, the rung silent for 6 s since", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 2*s),
		}, false, 6 * s, map[string]time.Duration{"v1": 6 * s}},
		{"ended", []*rendition{
			track("v0", false, true, 90000, 12*s), track("v1", true, true, 90000, 2*s),
		}, true, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &streamEnv{cfg: Config{SegmentDuration: time.Second}, log: slog.New(slog.DiscardHandler)}
			st := &stream{instance: instance{name: "s"}, env: env, sessionBase: tc.base}
			next := &snapshot{renditions: tc.renditions, ended: tc.ended}
			got := map[string]time.Duration{}
			st.mu.Lock()
			for _, r := range next.renditions {
				c := *r
				st.markStallLocked(next, &c, next.sourceEnd())
				if c.stalled != 0 {
					got[c.id] = c.stalled
				}
			}
			st.mu.Unlock()
			if len(got) != len(tc.want) {
				t.Fatalf("stalled %v, want %v", got, tc.want)
			}
			for id, d := range tc.want {
				if got[id] != d {
					t.Errorf("stalled %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestStallAfter(t *testing.T) {
	for _, tc := range []struct{ segment, want time.Duration }{
		{time.Second, 5 * time.Second},
		{500 * time.Millisecond, 5 * time.Second},
		{2 * time.Second, 10 * time.Second},
	} {
		if got := stallAfter(tc.segment); got != tc.want {
			t.Errorf("stallAfter(%v) = %v, want %v", tc.segment, got, tc.want)
		}
	}
}

// A rung whose transcoder stops leaves the HLS multivariant playlist and
// its media playlist answers 404, once it is stallAfter behind; it comes
// back with its segments; an ended stream has nothing stalled.
func TestLadderStall(t *testing.T) {
	events := logtest.New(256, "rendition")
	srv, err := New(Config{Logger: slog.New(events)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f := publishFeed(t, srv, "abr", time.Second, true)
	v1 := f.rung(0, 0)
	v2 := f.rung(1, 0)
	epoch := srv.stream("abr").epoch
	path := func(rid, file string) string { return "/live/abr/" + epoch + "/" + rid + "/" + file }

	// Both rungs for 2 s, then v2's transcoder dies: 10 s more without it.
	f.run(2*time.Second, 0, v1, v2)
	v2.Close()
	f.run(10*time.Second, 0, v1)

	if msg := events.Await(t, "ladder rendition"); !strings.Contains(msg, "stalled") || !strings.Contains(msg, "rendition=v2") {
		t.Errorf("logged %q, want v2 stalled", msg)
	}
	if got := variants(t, srv, "abr"); !slices.Equal(got, []string{"a0", "v0", "v1"}) {
		t.Errorf("multivariant playlist lists %v, want a0, v0 and v1", got)
	}
	code, body := fetch(srv, path("v2", "index.m3u8"))
	if code != http.StatusNotFound || !strings.Contains(string(body), "rendition stalled: its transcoder has produced nothing for 9 s") {
		t.Errorf("stalled media playlist: %d %q, want 404 saying it stalled", code, body)
	}
	for _, p := range []string{path("v2", "init.mp4"), path("v2", "0.m4s"), path("v1", "index.m3u8"), path("a0", "index.m3u8")} {
		if code, _ := fetch(srv, p); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", p, code)
		}
	}
	if got := representations(t, srv, "abr"); !slices.Equal(got, []string{"a0", "v0", "v1", "v2"}) {
		t.Errorf("MPD lists %v, want every rendition", got)
	}

	// A new transcoder: v2 goes on after a discontinuity.
	v2 = f.rung(1, f.video)
	f.run(3*time.Second, 0, v1, v2)
	// The next ladder record is this one: no second "stalled" before it.
	if msg := events.Await(t, "ladder rendition"); !strings.Contains(msg, "resumed") || !strings.Contains(msg, "rendition=v2") {
		t.Errorf("logged %q, want v2 resumed", msg)
	}
	if got := variants(t, srv, "abr"); !slices.Equal(got, []string{"a0", "v0", "v1", "v2"}) {
		t.Errorf("multivariant playlist lists %v, want all of them", got)
	}
	if code, body := fetch(srv, path("v2", "index.m3u8")); code != http.StatusOK {
		t.Errorf("resumed media playlist: %d %q, want 200", code, body)
	}

	// It stalls again, then the publisher leaves: nothing is stalled in an
	// ended stream, and nothing says the rung resumed.
	v2.Close()
	f.run(8*time.Second, 0, v1)
	if msg := events.Await(t, "ladder rendition"); !strings.Contains(msg, "stalled") {
		t.Errorf("logged %q, want v2 stalled", msg)
	}
	v1.Close()
	f.sess.Close()
	if got := variants(t, srv, "abr"); !slices.Equal(got, []string{"a0", "v0", "v1", "v2"}) {
		t.Errorf("ended: multivariant playlist lists %v, want all of them", got)
	}
	if code, body := fetch(srv, path("v2", "index.m3u8")); code != http.StatusOK || !strings.Contains(string(body), "#EXT-X-ENDLIST") {
		t.Errorf("ended: media playlist %d %q, want 200 with EXT-X-ENDLIST", code, body)
	}
	slog.New(events).Info("ladder rendition: end of test")
	if msg := events.Await(t, "ladder rendition"); msg != "ladder rendition: end of test" {
		t.Errorf("logged %q after the stream ended", msg)
	}
}

// A rung that trails the source by a segment or two, as a working
// transcoder does, is never stalled. The source's segment closes a moment
// before the rung's, so for that moment the rung is one segment further
// behind: four segments of 1 s reach stallAfter, not past it.
func TestLadderTrailing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		segment  time.Duration
		lag      time.Duration
		stalling bool
	}{
		{"in step", time.Second, 0, false},
		{"one segment behind", time.Second, time.Second, false},
		{"two segments behind", time.Second, 2 * time.Second, false},
		{"four segments behind", time.Second, 4 * time.Second, false},
		{"six segments behind", time.Second, 6 * time.Second, true},
		{"three 2-s segments behind", 2 * time.Second, 6 * time.Second, false},
		{"six 2-s segments behind", 2 * time.Second, 12 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := logtest.New(256, "rendition")
			srv, err := New(Config{SegmentDuration: tc.segment, Logger: slog.New(events)})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			f := publishFeed(t, srv, "trail", tc.segment, false)
			f.run(30*time.Second, tc.lag, f.rung(0, 0))

			slog.New(events).Info("ladder rendition: end of test")
			msg := events.Await(t, "ladder rendition")
			if got := strings.Contains(msg, "stalled"); got != tc.stalling {
				t.Errorf("first ladder record %q; want stalled: %v", msg, tc.stalling)
			}
			want := []string{"v0", "v1"}
			if tc.stalling {
				want = want[:1]
			}
			if got := variants(t, srv, "trail"); !slices.Equal(got, want) {
				t.Errorf("multivariant playlist lists %v, want %v", got, want)
			}
		})
	}
}

// feed publishes a synthetic source, 10 frames a second with a keyframe
// every segment, and optionally AAC audio, as fast as it can.
type feed struct {
	t            *testing.T
	sess         *Session
	codec        *codecs.H264
	key          time.Duration // the keyframe interval
	audio        bool
	video, sound time.Duration // the next frame times on the stream timeline
}

func publishFeed(t *testing.T, srv *Server, name string, key time.Duration, audio bool) *feed {
	t.Helper()
	f := &feed{t: t, key: key, audio: audio, codec: &codecs.H264{
		SPS: fromHex(t, "6764001eacd940a02ff970110000030001000003003c0f162d96"), // x264, 640x360
		PPS: fromHex(t, "68ebe3cb22c0"),
	}}
	tracks := []codecs.Codec{f.codec}
	if audio {
		tracks = append(tracks, &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}})
	}
	sess, err := srv.Publish(name, tracks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	f.sess = sess
	return f
}

// rung adds ladder rung slot from start, as a transcoder does.
func (f *feed) rung(slot int, start time.Duration) *Rendition {
	f.t.Helper()
	r, err := f.sess.AddRendition(slot, f.codec, start)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// run feeds d of source media, and the same frames lag later to rungs.
func (f *feed) run(d, lag time.Duration, rungs ...*Rendition) {
	f.t.Helper()
	const step = 100 * time.Millisecond
	frame := func(t time.Duration) [][]byte {
		if t%f.key == 0 {
			return [][]byte{{0x65, 0x88, 0x84}} // IDR slice
		}
		return [][]byte{{0x41, 0x9a, 0x02}}
	}
	for end := f.video + d; f.video < end; f.video += step {
		if err := f.sess.WriteVideo(0, f.video, f.video, frame(f.video)); err != nil {
			f.t.Fatal(err)
		}
		for f.audio && f.sound < f.video+step {
			if err := f.sess.WriteAudio(1, f.sound, []byte{0x21, 0x10, 0x04}); err != nil {
				f.t.Fatal(err)
			}
			f.sound += 1024 * time.Second / 48000
		}
		if t := f.video - lag; t >= 0 {
			for _, r := range rungs {
				if err := r.WriteVideo(t, t, frame(t)); err != nil {
					f.t.Fatal(err)
				}
			}
		}
	}
}

func fromHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetch sends GET path to the origin's HTTP handler.
func fetch(srv *Server, path string) (int, []byte) {
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.Bytes()
}

// variants returns the renditions the stream's multivariant playlist
// lists, as variants or in EXT-X-MEDIA groups, sorted.
func variants(t *testing.T, srv *Server, name string) []string {
	t.Helper()
	code, body := fetch(srv, "/live/"+name+"/index.m3u8")
	var mv playlist.Multivariant
	if err := mv.Unmarshal(body); code != http.StatusOK || err != nil {
		t.Fatalf("multivariant playlist: %d %v\n%s", code, err, body)
	}
	var ids []string
	for _, v := range mv.Variants {
		ids = append(ids, strings.Split(v.URI, "/")[1])
	}
	for _, r := range mv.Renditions {
		ids = append(ids, strings.Split(*r.URI, "/")[1])
	}
	slices.Sort(ids)
	return ids
}

// representations returns the Representation ids of the stream's MPD, sorted.
func representations(t *testing.T, srv *Server, name string) []string {
	t.Helper()
	code, body := fetch(srv, "/live/"+name+"/manifest.mpd")
	m, err := mpd.ReadFromString(string(body))
	if code != http.StatusOK || err != nil {
		t.Fatalf("MPD: %d %v\n%s", code, err, body)
	}
	var ids []string
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			ids = append(ids, r.Id)
		}
	}
	slices.Sort(ids)
	return ids
}

// A resumed stream remembers where on its timeline the publisher came
// back, which is what a rung's lag is measured from (markStallLocked).
func TestSessionBase(t *testing.T) {
	p := startAudio(t, Config{})
	p.until(3 * time.Second)
	p.sess.Close()
	again, err := p.srv.Publish("s", []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	st := p.srv.stream("s")
	st.mu.Lock()
	base := st.sessionBase
	st.mu.Unlock()
	if base < 2*time.Second || base != again.base {
		t.Errorf("sessionBase %v, the resumed session's base %v; want that base, at least 2 s", base, again.base)
	}
}

package origin

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// publishAudio publishes stream name as one AAC track at rate and writes
// seconds of it (3 segments and more close).
func publishAudio(t *testing.T, srv *Server, name string, rate, seconds int) *Session {
	t.Helper()
	sess, err := srv.Publish(name, []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: rate, ChannelCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	writeAudio(t, sess, rate, 0, seconds)
	return sess
}

// writeAudio writes the AAC frames of seconds from second from.
func writeAudio(t *testing.T, sess *Session, rate, from, seconds int) {
	t.Helper()
	for i := from * rate / 1024; i*1024 < (from+seconds)*rate; i++ {
		if err := sess.WriteAudio(0, time.Duration(i)*1024*time.Second/time.Duration(rate), bytes.Repeat([]byte{1}, 100)); err != nil {
			t.Fatal(err)
		}
	}
}

// mediaPlaylistOf fetches and parses a media playlist.
func mediaPlaylistOf(t *testing.T, srv *Server, path string) *playlist.Media {
	t.Helper()
	code, body := fetch(srv, path)
	var pl playlist.Media
	if err := pl.Unmarshal(body); code != http.StatusOK || err != nil {
		t.Fatalf("%s: %d %v\n%s", path, code, err, body)
	}
	return &pl
}

// mpdOf fetches and parses a stream's MPD.
func mpdOf(t *testing.T, srv *Server, name string) *mpd.MPD {
	t.Helper()
	code, body := fetch(srv, "/live/"+name+"/manifest.mpd")
	m, err := mpd.ReadFromString(string(body))
	if code != http.StatusOK || err != nil {
		t.Fatalf("MPD: %d %v\n%s", code, err, body)
	}
	return m
}

// awaitEnded waits, on snapshot events, until st has ended.
func awaitEnded(t *testing.T, st *stream, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		sn := st.snap.Load()
		if sn.ended {
			return
		}
		select {
		case <-sn.changed:
		case <-timeout:
			t.Fatalf("stream %s not ended within %v", st.name, within)
		}
	}
}

// lostStream returns a server (10 s window, 1 min reconnect window) whose
// stream "s", 3 s of 48 kHz AAC, has lost its publisher.
func lostStream(t *testing.T) (*Server, *stream) {
	t.Helper()
	srv, err := New(Config{Window: 10 * time.Second, ReconnectWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	publishAudio(t, srv, "s", 48000, 3).Drop()
	return srv, srv.stream("s")
}

// TestLostPublisher: a publisher whose connection broke (Drop) leaves its
// stream live for the reconnect window. Back with the same tracks, it
// resumes the stream: viewers never see it end. Back with other tracks,
// it publishes the next Period of the same DASH presentation. Not back,
// the stream ends when the window closes; a clean Close, or a negative
// window, ends it at once.
func TestLostPublisher(t *testing.T) {
	t.Run("resumes", func(t *testing.T) {
		srv, st := lostStream(t)
		path := "/live/s/" + st.epoch + "/a0/index.m3u8"
		if pl := mediaPlaylistOf(t, srv, path); pl.Endlist {
			t.Fatal("a lost publisher's playlist ended at once")
		}
		if m := mpdOf(t, srv, "s"); m.GetType() != "dynamic" {
			t.Errorf("a lost publisher's MPD is %s, want dynamic", m.GetType())
		}
		if infos := srv.Streams(); len(infos) != 1 || !infos[0].Live || !infos[0].Reconnecting {
			t.Errorf("/api/streams: %+v, want live and reconnecting", infos)
		}
		before := len(mediaPlaylistOf(t, srv, path).Segments)

		defer publishAudio(t, srv, "s", 48000, 3).Close()
		if srv.stream("s") != st {
			t.Fatal("the publisher back with the same tracks did not resume the stream")
		}
		pl := mediaPlaylistOf(t, srv, path)
		if pl.Endlist || len(pl.Segments) <= before || !pl.Segments[before].Discontinuity {
			t.Errorf("resumed playlist: ENDLIST %v, %d segments (had %d), want more after a discontinuity", pl.Endlist, len(pl.Segments), before)
		}
		if infos := srv.Streams(); infos[0].Reconnecting {
			t.Error("/api/streams: still reconnecting once resumed")
		}
	})

	t.Run("next period", func(t *testing.T) {
		srv, old := lostStream(t)
		ast := mpdOf(t, srv, "s").AvailabilityStartTime

		sess := publishAudio(t, srv, "s", 44100, 3)
		defer sess.Close()
		cur := srv.stream("s")
		if cur == old {
			t.Fatal("other tracks resumed the old instance")
		}
		// Its HLS players go on too (TestBridgeServed).
		if pl := mediaPlaylistOf(t, srv, "/live/s/"+old.epoch+"/a0/index.m3u8"); pl.Endlist {
			t.Error("the replaced instance's playlist ended")
		}
		m := mpdOf(t, srv, "s")
		if m.GetType() != "dynamic" || m.AvailabilityStartTime != ast || len(m.Periods) != 2 ||
			m.Periods[0].Id != old.epoch || m.Periods[1].Id != cur.epoch {
			t.Fatalf("MPD: %s, AST %s (was %s), %d periods; want dynamic, the same AST, periods %s then %s",
				m.GetType(), m.AvailabilityStartTime, ast, len(m.Periods), old.epoch, cur.epoch)
		}
		// Where the first instance's media ends (written faster than real
		// time), or later.
		want := max(cur.ast.Sub(old.ast), old.snap.Load().end())
		if start := time.Duration(*m.Periods[1].Start); start != want.Round(time.Millisecond) {
			t.Errorf("second period starts at %v, want %v", start, want)
		}
		rate := m.Periods[1].AdaptationSets[0].Representations[0].AudioSamplingRate
		if rate == nil || *rate != "44100" {
			t.Errorf("second period's audio at %v, want 44100", rate)
		}

		// Once the first instance is dropped, its Period goes with it,
		// from the next segment's MPD on.
		srv.forget(old)
		writeAudio(t, sess, 44100, 3, 2)
		if m := mpdOf(t, srv, "s"); len(m.Periods) != 1 || m.Periods[0].Id != cur.epoch || m.AvailabilityStartTime != ast {
			t.Errorf("MPD once the first instance is dropped: %d periods, AST %s", len(m.Periods), m.AvailabilityStartTime)
		}
		cur.mu.Lock()
		defer cur.mu.Unlock()
		if len(cur.prior) != 0 {
			t.Errorf("a dropped instance is still held as a prior Period: %d", len(cur.prior))
		}
	})

	t.Run("ends when the window closes", func(t *testing.T) {
		srv, err := New(Config{Window: 10 * time.Second, ReconnectWindow: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		start := time.Now()
		publishAudio(t, srv, "s", 48000, 3).Drop()
		st := srv.stream("s")
		awaitEnded(t, st, 10*time.Second)
		if waited := time.Since(start); waited < 100*time.Millisecond {
			t.Errorf("ended after %v, before the reconnect window", waited)
		}
		if pl := mediaPlaylistOf(t, srv, "/live/s/"+st.epoch+"/a0/index.m3u8"); !pl.Endlist {
			t.Error("no ENDLIST once the window closed")
		}
	})

	for _, tc := range []struct {
		name   string
		window time.Duration
		end    func(*Session)
	}{
		{"close ends at once", time.Minute, (*Session).Close},
		{"negative window ends at once", -1, (*Session).Drop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Config{Window: 10 * time.Second, ReconnectWindow: tc.window})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			tc.end(publishAudio(t, srv, "s", 48000, 3))
			if !srv.stream("s").snap.Load().ended {
				t.Error("not ended")
			}
		})
	}

	t.Run("server close ends the waiting streams", func(t *testing.T) {
		srv, err := New(Config{Window: 10 * time.Second, ReconnectWindow: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		publishAudio(t, srv, "s", 48000, 3).Drop()
		srv.Close()
		st := srv.stream("s")
		if !st.snap.Load().ended || !strings.Contains(string(mustFetch(t, srv, "/live/s/"+st.epoch+"/a0/index.m3u8")), "#EXT-X-ENDLIST") {
			t.Error("a stream waiting for its publisher did not end with the server")
		}
	})
}

func mustFetch(t *testing.T, srv *Server, path string) []byte {
	t.Helper()
	code, body := fetch(srv, path)
	if code != http.StatusOK {
		t.Fatalf("%s: %d", path, code)
	}
	return body
}

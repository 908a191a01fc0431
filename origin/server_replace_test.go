package origin

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// TestReplacedInstanceLingers: a stream name published anew with other
// tracks gets a new epoch at once, and the instance it replaced goes on
// serving its files, its playlist ended, until its linger ends; players
// on it play to the end instead of meeting 404s.
func TestReplacedInstanceLingers(t *testing.T) {
	srv, err := New(Config{Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	publish := func(rate int) *Session {
		sess, err := srv.Publish("s", []codecs.Codec{&codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: rate, ChannelCount: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i*1024 < 3*rate; i++ {
			if err := sess.WriteAudio(0, time.Duration(i)*1024*time.Second/time.Duration(rate), bytes.Repeat([]byte{1}, 100)); err != nil {
				t.Fatal(err)
			}
		}
		return sess
	}
	first := publish(48000)
	old := srv.stream("s")
	first.Close()
	second := publish(44100)
	defer second.Close()
	if srv.stream("s") == old {
		t.Fatal("other tracks resumed the old instance")
	}

	base := "/live/s/" + old.epoch + "/a0/"
	code, body := fetch(srv, base+"index.m3u8")
	if code != http.StatusOK || !strings.Contains(string(body), "#EXT-X-ENDLIST") {
		t.Fatalf("the replaced instance's playlist: %d\n%s", code, body)
	}
	for _, file := range []string{"init.mp4", "0.m4s", "1.m4s"} {
		if code, _ := fetch(srv, base+file); code != http.StatusOK {
			t.Errorf("the replaced instance's %s: %d, want 200", file, code)
		}
	}
	if code, body := fetch(srv, "/live/s/index.m3u8"); code != http.StatusOK || !strings.Contains(string(body), srv.stream("s").epoch+"/a0/index.m3u8") {
		t.Errorf("the multivariant playlist does not point at the new instance: %d\n%s", code, body)
	}

	srv.forget(old) // its linger ends
	if code, _ := fetch(srv, base+"0.m4s"); code != http.StatusNotFound {
		t.Errorf("after its linger, the replaced instance's segment: %d, want 404", code)
	}
	if code, _ := fetch(srv, "/live/s/"+srv.stream("s").epoch+"/a0/0.m4s"); code != http.StatusOK {
		t.Errorf("the new instance's segment: %d, want 200", code)
	}
}

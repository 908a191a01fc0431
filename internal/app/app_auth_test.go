package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/publisher"
)

// With a publish key, ffmpeg publishing without it is refused with the
// reason, with it goes live; the demo stream gives the key itself.
func TestPublishKey(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	codecs := append(append([]string{}, x264GOP1s...), "-c:a", "aac")
	a := startApp(t, Config{Demo: true, PublishKey: "s3cret"})
	a.waitLive(t, DemoStream, 20*time.Second)
	if publish, _ := a.URLs(); !strings.HasSuffix(publish, "/live/{stream}?key={key}") {
		t.Errorf("publish URL %q does not say a key is needed", publish)
	}

	out, err := runCmd(context.Background(), 30*time.Second, ffmpeg, ffmpegSource(a.rtmp+"nokey?key=guess", 2, codecs...)...)
	if err == nil || !strings.Contains(out, "not authorized to publish") {
		t.Errorf("publish with a wrong key: err %v, output:\n%s", err, out)
	}
	if _, ok := a.streams(t)["nokey"]; ok {
		t.Errorf("the refused stream is listed")
	}
	if m := mustGet(t, a.base+"/metrics"); !bytes.Contains(m, []byte(`live_ingest_refused_total{reason="unauthorized"} 1`)) {
		t.Errorf("/metrics does not count the refusal")
	}

	done := make(chan error, 1)
	go func() {
		out, err := runCmd(context.Background(), 30*time.Second, ffmpeg, ffmpegSource(a.rtmp+"withkey?key=s3cret", 6, codecs...)...)
		if err != nil {
			err = errors.Join(err, errors.New(out))
		}
		done <- err
	}()
	a.waitLive(t, "withkey", 20*time.Second)
	if err := <-done; err != nil {
		t.Errorf("publish with the key: %v", err)
	}
}

// With a publish authorization URL, the service decides: it gets the
// stream name, the publisher's address and its key.
func TestPublishAuthURL(t *testing.T) {
	forms := make(chan url.Values, 4)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		forms <- r.PostForm
		if r.PostForm.Get("key") != "good" {
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer svc.Close()
	a := startApp(t, Config{PublishAuthURL: svc.URL + "/on_publish"})
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	publish := func(key string) error {
		return publisher.Publish(context.Background(), publisher.Config{URL: a.rtmp + "cam?key=" + key, Clip: clip, Loops: 1, Speed: -1})
	}
	if err := publish("bad"); !errors.Is(err, publisher.ErrRejected) || !strings.Contains(err.Error(), "403") {
		t.Errorf("refused publisher: %v, want a refusal naming the service's answer", err)
	}
	asked := func() url.Values {
		select {
		case f := <-forms:
			return f
		case <-time.After(20 * time.Second):
			t.Fatal("the authorization service was not asked")
			return nil
		}
	}
	if f := asked(); f.Get("name") != "cam" || f.Get("addr") != "127.0.0.1" || f.Get("call") != "publish" {
		t.Errorf("the service got %v", f)
	}
	if err := publish("good"); err != nil {
		t.Errorf("allowed publisher: %v", err)
	}
	asked()
	if _, ok := a.streams(t)["cam"]; !ok {
		t.Errorf("the allowed stream is not listed")
	}
}

func TestPublishAuthConfig(t *testing.T) {
	for _, cfg := range []Config{
		{PublishKey: "k", PublishAuthURL: "http://127.0.0.1:1/auth"},
		{PublishAuthURL: "ftp://127.0.0.1/auth"},
		{PublishAuthURL: "/auth"},
	} {
		cfg.RTMPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		if a, err := New(cfg); err == nil {
			a.closeListeners()
			t.Errorf("New accepted key %q and URL %q", cfg.PublishKey, cfg.PublishAuthURL)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		env            string
		wantKey, wantU string
		err            string // part of the error, "" for none
	}{
		{args: nil, wantKey: "", wantU: ""},
		{args: nil, env: "fromenv", wantKey: "fromenv"},
		{args: []string{"-publish-key", "flag"}, env: "fromenv", wantKey: "flag"},
		{args: []string{"-publish-auth", "http://127.0.0.1:9/auth"}, wantU: "http://127.0.0.1:9/auth"},
		{args: []string{"-log-format", "xml"}, err: "-log-format"},
		{args: []string{"-ladder", "bogus"}, err: "-ladder"},
	} {
		t.Setenv("LIVE_PUBLISH_KEY", tc.env)
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := AddFlags(fs, "players")
		if err := fs.Parse(append([]string{"-rtmp", "127.0.0.1:1", "-rtmps", "127.0.0.1:2", "-https", "127.0.0.1:3", "-window", "12s"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config(io.Discard)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one about %s", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.PublishKey != tc.wantKey || cfg.PublishAuthURL != tc.wantU {
			t.Errorf("%v with $LIVE_PUBLISH_KEY=%q: key %q, URL %q; want %q, %q", tc.args, tc.env, cfg.PublishKey, cfg.PublishAuthURL, tc.wantKey, tc.wantU)
		}
		if cfg.RTMPAddr != "127.0.0.1:1" || cfg.RTMPSAddr != "127.0.0.1:2" || cfg.HTTPAddr != ":8080" || cfg.HTTPSAddr != "127.0.0.1:3" || cfg.Origin.Window != 12*time.Second || cfg.Transcode == nil || cfg.Logger == nil {
			t.Errorf("%v: config %+v", tc.args, cfg)
		}
	}
}

// TestReconnectWindowFlag: -reconnect-window 0 turns the wait off, which
// the origin's Config spells as negative (its zero is the default).
func TestReconnectWindowFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{[]string{"-reconnect-window", "3s"}, 3 * time.Second},
		{[]string{"-reconnect-window", "0"}, -1},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := AddFlags(fs, "players")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Origin.ReconnectWindow != tc.want {
			t.Errorf("%v: ReconnectWindow %v, want %v", tc.args, cfg.Origin.ReconnectWindow, tc.want)
		}
	}
}

// TestPartFlag: -part is the origin's chunk duration (LL-HLS parts), from
// 10 ms to a segment.
func TestPartFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		err  bool
	}{
		{nil, 250 * time.Millisecond, false},
		{[]string{"-part", "200ms"}, 200 * time.Millisecond, false},
		{[]string{"-part", "2s", "-segment", "2s"}, 2 * time.Second, false},
		{[]string{"-part", "1500ms"}, 0, true},
		{[]string{"-part", "0"}, 0, true},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := AddFlags(fs, "players")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config(io.Discard)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "-part") {
				t.Errorf("%v: error %v, want one about -part", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.Origin.ChunkDuration != tc.want {
			t.Errorf("%v: ChunkDuration %v, want %v", tc.args, cfg.Origin.ChunkDuration, tc.want)
		}
	}
}

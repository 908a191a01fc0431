package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/internal/tlstest"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

// TestTLSPlayers serves players over HTTPS (-https, with -tls-cert and
// -tls-key) beside plain HTTP: ffprobe reads every frame of a stream
// published by ffmpeg through the PoP over HTTPS, a Go client gets HTTP/2
// there, and the plain HTTP port serves the same stream.
func TestTLSPlayers(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	certFile, keyFile := tlstest.Files(t)
	a := startApp(t, Config{
		HTTPSAddr:   "127.0.0.1:0",
		Origin:      origin.Config{Window: time.Minute},
		PoP:         &pop.Config{},
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
	})
	secure := "https://" + loopbackAddr(a.HTTPSAddr())
	if _, play := a.URLs(); !strings.Contains(play, secure) || !strings.HasPrefix(play, a.base) {
		t.Errorf("play URLs %q, want %s and %s", play, a.base, secure)
	}
	const seconds, fps = 3, 30
	args := append(append([]string{}, x264GOP1s...), "-c:a", "aac")
	if out, err := runCmd(context.Background(), time.Minute, ffmpeg, ffmpegSource(a.rtmp+"tls", seconds, args...)...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	// The origin's own port is plain HTTP on loopback.
	(&testApp{App: a.App, base: a.origin}).waitEnded(t, "tls", 15*time.Second)

	video, _ := probe(t, ffprobe, secure+"/live/tls/index.m3u8")
	if len(video) != seconds*fps {
		t.Errorf("ffprobe read %d video packets over HTTPS, %d published", len(video), seconds*fps)
	}

	client, err := tlsfile.Client(certFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{secure, a.base} {
		resp, err := client.Get(base + "/live/tls/index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "HTTP/1.1"
		if base == secure {
			want = "HTTP/2.0"
		}
		if resp.StatusCode != http.StatusOK || resp.Proto != want {
			t.Errorf("multivariant playlist at %s: %s over %s, want 200 over %s", base, resp.Status, resp.Proto, want)
		}
	}
}

// TestTLSConfig: HTTPS and RTMPS need the certificate, and a certificate
// needs one of them (it used to make -http HTTPS: a command line of then
// must not quietly serve plain HTTP now).
func TestTLSConfig(t *testing.T) {
	certFile, keyFile := tlstest.Files(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string // part of the error
	}{
		{"https without certificate", Config{HTTPSAddr: "127.0.0.1:0"}, "needs a certificate"},
		{"rtmps without certificate", Config{RTMPSAddr: "127.0.0.1:0"}, "needs a certificate"},
		{"certificate for nothing", Config{TLSCertFile: certFile, TLSKeyFile: keyFile}, "is for a TLS listener"},
		{"key missing", Config{HTTPSAddr: "127.0.0.1:0", TLSCertFile: certFile}, "both its files"},
	} {
		cfg := tc.cfg
		cfg.RTMPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		app, err := New(cfg)
		if err == nil {
			app.closeListeners()
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.err)
		}
	}
}

// TestRTMPSPublishers: ffmpeg publishes over RTMPS (-rtmps, with the
// certificate of -tls-cert), and every frame reaches the players, who
// still use plain HTTP (TLS ended in front of them, or not at all); the
// printed URLs say where.
func TestRTMPSPublishers(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	certFile, keyFile := tlstest.Files(t)
	a := startApp(t, Config{
		RTMPSAddr:   "127.0.0.1:0",
		Origin:      origin.Config{Window: time.Minute},
		PoP:         &pop.Config{},
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
	})
	secure := "rtmps://" + a.RTMPSAddr().String() + "/live/"
	if publish, play := a.URLs(); !strings.Contains(publish, "rtmps://"+loopbackAddr(a.RTMPSAddr())+"/live/{stream}") || strings.Contains(play, "https") {
		t.Errorf("publish URLs %q name no RTMPS, or play URLs %q HTTPS", publish, play)
	}
	const seconds, fps = 3, 30
	args := append(append([]string{}, x264GOP1s...), "-c:a", "aac")
	if out, err := runCmd(context.Background(), time.Minute, ffmpeg, ffmpegSource(secure+"sec", seconds, args...)...); err != nil {
		t.Fatalf("ffmpeg over RTMPS: %v\n%s", err, out)
	}
	(&testApp{App: a.App, base: a.origin}).waitEnded(t, "sec", 15*time.Second)
	video, audio := probe(t, ffprobe, a.base+"/live/sec/index.m3u8")
	if len(video) != seconds*fps || len(audio) == 0 {
		t.Errorf("ffprobe read %d video and %d audio packets; %d video frames published over RTMPS", len(video), len(audio), seconds*fps)
	}
}

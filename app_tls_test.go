package live

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// for the test only, and returns their files.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := tlsfile.WriteSelfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSPlayers serves players over HTTPS (-tls-cert, -tls-key): ffprobe
// reads every frame of a stream published by ffmpeg through the PoP over
// HTTPS, and a Go client gets HTTP/2.
func TestTLSPlayers(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	certFile, keyFile := writeCert(t)
	a := startApp(t, Config{
		Origin:      origin.Config{Window: time.Minute},
		PoP:         &pop.Config{},
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
	})
	if !strings.HasPrefix(a.base, "https://") {
		t.Fatalf("players' base URL %s, want https", a.base)
	}
	const seconds, fps = 3, 30
	args := append(append([]string{}, x264GOP1s...), "-c:a", "aac")
	if out, err := runCmd(context.Background(), time.Minute, ffmpeg, ffmpegSource(a.rtmp+"tls", seconds, args...)...); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	// The origin's own port is plain HTTP on loopback.
	(&testApp{App: a.App, base: a.origin}).waitEnded(t, "tls", 15*time.Second)

	video, _ := probe(t, ffprobe, a.base+"/live/tls/index.m3u8")
	if len(video) != seconds*fps {
		t.Errorf("ffprobe read %d video packets over HTTPS, %d published", len(video), seconds*fps)
	}

	client, err := tlsfile.Client(certFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(a.base + "/live/tls/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Errorf("multivariant playlist: %s over %s, want 200 over HTTP/2.0", resp.Status, resp.Proto)
	}
}

// TestRTMPSPublishers: ffmpeg publishes over RTMPS (-rtmps, with the
// certificate of -tls-cert), and every frame reaches the players; the
// printed URLs say where. Without a certificate, RTMPS is refused at
// start.
func TestRTMPSPublishers(t *testing.T) {
	ffmpeg, ffprobe := requireTool(t, "ffmpeg"), requireTool(t, "ffprobe")
	certFile, keyFile := writeCert(t)
	a := startApp(t, Config{
		RTMPSAddr:   "127.0.0.1:0",
		Origin:      origin.Config{Window: time.Minute},
		PoP:         &pop.Config{},
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
	})
	secure := "rtmps://" + a.RTMPSAddr().String() + "/live/"
	if publish, _ := a.URLs(); !strings.Contains(publish, "rtmps://"+loopbackAddr(a.RTMPSAddr())+"/live/{stream}") {
		t.Errorf("publish URLs %q name no RTMPS", publish)
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

	cfg := Config{RTMPAddr: "127.0.0.1:0", RTMPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	if app, err := New(cfg); err == nil {
		app.closeListeners()
		t.Error("RTMPS without a certificate was accepted")
	}
}

package ingest

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/internal/tlstest"
	"github.com/golivestream/live/publisher"
)

// TestRTMPS: a publisher reaches the handler over RTMPS, with the chunk
// guard reading the decrypted stream, while plain RTMP goes on on its own
// port; plain RTMP sent to the RTMPS port is refused with a log line.
func TestRTMPS(t *testing.T) {
	certFile, keyFile := tlstest.Files(t)
	cert, err := tlsfile.New(tlsfile.Config{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	trusting, err := tlsfile.ClientConfig(certFile)
	if err != nil {
		t.Fatal(err)
	}

	events := logtest.New(64)
	reg := prometheus.NewRegistry()
	h, base := startGated(t, Config{
		TLSAddr: "127.0.0.1:0", TLSConfig: cert.ServerConfig(),
		Logger: slog.New(events), Registerer: reg,
	})
	h.release()
	srv := h.srv
	secure := "rtmps://" + srv.TLSAddr().String() + "/live/"
	clip := clipLoadDemo(t)
	publish := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return publisher.Publish(ctx, publisher.Config{URL: url, Clip: clip, Loops: 1, Speed: -1, TLSConfig: trusting})
	}

	if err := publish(secure + "sec"); err != nil {
		t.Fatalf("over RTMPS: %v", err)
	}
	if name := await(t, h.published); name != "sec" {
		t.Fatalf("published %q", name)
	}
	if err := publish(base + "plain"); err != nil {
		t.Fatalf("over RTMP: %v", err)
	}
	if name := await(t, h.published); name != "plain" {
		t.Fatalf("published %q", name)
	}

	// Plain RTMP to the RTMPS port: the TLS handshake fails, and says so.
	if err := publish("rtmp://" + srv.TLSAddr().String() + "/live/wrong"); err == nil {
		t.Fatal("plain RTMP was accepted on the RTMPS port")
	}
	events.Await(t, "rtmp connection refused")
	// RTMPS to a certificate the publisher does not trust is refused by it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = publisher.Publish(ctx, publisher.Config{URL: secure + "untrusted", Clip: clip, Loops: 1, Speed: -1})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("untrusted certificate: %v, want an unknown authority error", err)
	}
}

package tlsfile

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golivestream/live/internal/logtest"
)

// files writes a self-signed pair into a new directory.
func files(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := WriteSelfSigned(certFile, keyFile, "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// serial returns the serial number of the certificate in certFile.
func serial(t *testing.T, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

func served(t *testing.T, c *Cert) *big.Int {
	t.Helper()
	tc, err := c.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber
}

func TestNewErrors(t *testing.T) {
	certFile, keyFile := files(t)
	otherCert, otherKey := files(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no files", Config{}},
		{"no key", Config{CertFile: certFile}},
		{"missing", Config{CertFile: certFile, KeyFile: keyFile + ".gone"}},
		{"key of another certificate", Config{CertFile: certFile, KeyFile: otherKey}},
		{"not PEM", Config{CertFile: otherCert, KeyFile: "/etc/hostname"}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// TestReload: new files are picked up at the next check; files that do not
// load leave the old certificate in place, with a warning; between checks
// the files are not looked at.
func TestReload(t *testing.T) {
	certFile, keyFile := files(t)
	events := logtest.New(16)
	c, err := New(Config{CertFile: certFile, KeyFile: keyFile, CheckEvery: -1, Logger: slog.New(events)})
	if err != nil {
		t.Fatal(err)
	}
	first := serial(t, certFile)
	if got := served(t, c); got.Cmp(first) != 0 {
		t.Fatalf("served serial %v, want %v", got, first)
	}

	if err := WriteSelfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	second := serial(t, certFile)
	if got := served(t, c); got.Cmp(second) != 0 {
		t.Fatalf("after renewal: served serial %v, want the new %v", got, second)
	}
	events.Await(t, "tls: certificate reloaded")

	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(t, c); got.Cmp(second) != 0 {
		t.Fatalf("after a broken key: served serial %v, want the loaded %v", got, second)
	}
	events.Await(t, "do not load")

	// With a long check period, a renewal waits for the next check.
	certFile, keyFile = files(t)
	slow, err := New(Config{CertFile: certFile, KeyFile: keyFile, CheckEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := served(t, slow)
	if err := WriteSelfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if got := served(t, slow); got.Cmp(before) != 0 {
		t.Errorf("files looked at before CheckEvery passed")
	}
}

// TestServeHTTP2: an http.Server with ServerConfig speaks HTTP/2 over TLS
// to a client that trusts the certificate.
func TestServeHTTP2(t *testing.T) {
	certFile, keyFile := files(t)
	c, err := New(Config{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
		TLSConfig: c.ServerConfig(),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })

	client, err := Client(certFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Proto != "HTTP/2.0" || string(body) != "HTTP/2.0" {
		t.Errorf("client saw %s, server %s; want HTTP/2.0", resp.Proto, body)
	}
}

// Package tlstest gives tests a self-signed certificate for 127.0.0.1 in
// files, as -tls-cert and -tls-key take it.
package tlstest

import (
	"path/filepath"
	"testing"

	"github.com/golivestream/live/internal/tlsfile"
)

// Files writes a new self-signed certificate for 127.0.0.1 and its key
// into a directory of the test's, and returns the two files.
func Files(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := tlsfile.WriteSelfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

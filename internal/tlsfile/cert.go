// Package tlsfile serves a TLS certificate from PEM files that may be
// replaced while the server runs (certbot, cert-manager, a cron job): the
// files are read again once they change, without a restart.
package tlsfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Config configures a Cert.
type Config struct {
	// CertFile and KeyFile are PEM files: the certificate chain and its
	// private key. Both required.
	CertFile, KeyFile string
	// CheckEvery is how often, at most, handshakes look for changed files.
	// Zero means 30 s; a negative value checks on every handshake.
	CheckEvery time.Duration
	// Logger receives reloads and failed reloads. Nil means discard.
	Logger *slog.Logger
}

// Cert is a certificate kept in step with its files. It is safe for
// concurrent use.
type Cert struct {
	cfg Config

	mu      sync.Mutex
	cert    *tls.Certificate // guarded by mu
	checked time.Time        // guarded by mu: the last look at the files
	stamp   string           // guarded by mu: the files' sizes and times when read
}

// New reads the certificate and key.
func New(cfg Config) (*Cert, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, fmt.Errorf("tls: both a certificate file and a key file are required")
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cert{cfg: cfg}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c.cert, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

// ServerConfig returns a TLS configuration serving c, for http.Server's
// TLSConfig: ServeTLS adds HTTP/2 to it.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.GetCertificate, MinVersion: tls.VersionTLS12}
}

// GetCertificate returns the current certificate, read again first if
// its files changed since they were last read. A change that does not
// load (a key written after its certificate, say) keeps the old one and
// is tried again at the next check.
func (c *Cert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.checked) < c.cfg.CheckEvery {
		return c.cert, nil
	}
	c.checked = now
	stamp, err := c.stampNow()
	if err != nil || stamp == c.stamp {
		if err != nil {
			c.cfg.Logger.Warn("tls: certificate files unreadable; keeping the loaded certificate", "error", err)
		}
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		c.cfg.Logger.Warn("tls: changed certificate files do not load; keeping the loaded certificate", "error", err)
		return c.cert, nil
	}
	c.cert, c.stamp = &cert, stamp
	c.cfg.Logger.Info("tls: certificate reloaded", "cert", c.cfg.CertFile)
	return c.cert, nil
}

// stampNow describes the files' current versions.
func (c *Cert) stampNow() (string, error) {
	var stamp string
	for _, name := range []string{c.cfg.CertFile, c.cfg.KeyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		stamp += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

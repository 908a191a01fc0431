package httpserve

import (
	"errors"
	"flag"
)

// Flags are the flags of the commands that serve players: -http, -https,
// -tls-cert and -tls-key, defined here once for live, origin and pop.
type Flags struct {
	HTTP, HTTPS, TLSCert, TLSKey *string
	// Debug is -debug-addr: where net/http/pprof listens (DebugServer).
	Debug *string
}

// AddFlags registers the serving flags on fs: httpDefault and httpUsage
// are -http's; certUsers names what the certificate serves besides -https
// ("-https and -rtmps"), for the help text.
func AddFlags(fs *flag.FlagSet, httpDefault, httpUsage, certUsers string) *Flags {
	return &Flags{
		HTTP:    fs.String("http", httpDefault, httpUsage),
		HTTPS:   fs.String("https", "", "HTTPS (and HTTP/2) listen address serving what -http serves, e.g. :8443, with the certificate of -tls-cert (empty: no HTTPS)"),
		TLSCert: fs.String("tls-cert", "", "PEM certificate chain of "+certUsers+" (read again when the file changes)"),
		TLSKey:  fs.String("tls-key", "", "PEM private key of -tls-cert"),
		Debug:   fs.String("debug-addr", "", "listen address of the profiler (net/http/pprof), e.g. 127.0.0.1:6060; keep it off the public network (empty: off)"),
	}
}

// CheckCert checks that a certificate (certFile, keyFile) is given
// exactly when something uses it: an HTTPS address, or another listener
// (RTMPS) named in users by its address; "" means unused. Both files go
// together. It is the one check of the commands' flags and of the
// components' Configs alike.
func CheckCert(certFile, keyFile string, users ...string) error {
	if (certFile == "") != (keyFile == "") {
		return errors.New("a certificate needs both its files: -tls-cert and -tls-key")
	}
	used := false
	for _, u := range users {
		used = used || u != ""
	}
	switch {
	case certFile != "" && !used:
		return errors.New("a certificate (-tls-cert, -tls-key) is for a TLS listener (-https, -rtmps): set one")
	case certFile == "" && used:
		return errors.New("a TLS listener (-https, -rtmps) needs a certificate: -tls-cert and -tls-key")
	}
	return nil
}

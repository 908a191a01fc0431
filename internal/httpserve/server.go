package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is one listener and the http.Server that answers it: plain
// HTTP, HTTPS, or plain HTTP with a fast path in front (the PoP's).
type Server struct {
	// HTTP answers the listener; its Handler is wrapped by Handler.
	HTTP *http.Server
	ln   net.Listener
	tls  bool
	// serve, when not nil, serves the listener instead of HTTP.Serve.
	serve func(*http.Server, net.Listener) error
}

// Listen opens addr for h: HTTPS with tlsConfig (HTTP/2 included), plain
// HTTP when tlsConfig is nil. log receives net/http's own errors.
func Listen(addr string, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{HTTP: New(h, log), ln: ln, tls: tlsConfig != nil}
	s.HTTP.TLSConfig = tlsConfig
	return s, nil
}

// ServeWith makes serve answer a plain HTTP listener instead of
// http.Server.Serve: the PoP's fast path (pop.Server.Serve). Call it
// before Serve.
func (s *Server) ServeWith(serve func(*http.Server, net.Listener) error) { s.serve = serve }

// Addr returns the address listened on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// TLS reports whether the server speaks HTTPS.
func (s *Server) TLS() bool { return s.tls }

// Scheme is "https" or "http".
func (s *Server) Scheme() string {
	if s.tls {
		return "https"
	}
	return "http"
}

// Serve answers the listener until Shutdown (then it returns nil) or a
// failure.
func (s *Server) Serve() error {
	var err error
	switch {
	case s.tls:
		err = s.HTTP.ServeTLS(s.ln, "", "")
	case s.serve != nil:
		err = s.serve(s.HTTP, s.ln)
	default:
		err = s.HTTP.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve %s: %w", s.ln.Addr(), err)
}

// Close releases the listener of a server that never served.
func (s *Server) Close() error { return s.ln.Close() }

// Shutdown shuts servers down gracefully, one after the other, within
// timeout in all: each stops accepting, ends its idle connections and
// lets the requests in flight finish; those still running at the
// deadline are cut off. Nil servers are skipped.
func Shutdown(timeout time.Duration, servers ...*Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if s == nil {
			continue
		}
		if err := s.HTTP.Shutdown(ctx); err != nil {
			s.HTTP.Close()
			errs = append(errs, fmt.Errorf("shutdown %s: %w", s.ln.Addr(), err))
		}
	}
	return errors.Join(errs...)
}

// Package fastpath is a small HTTP/1.1 server for the one kind of request
// that nearly every request to a media cache is: a plain GET or HEAD of a
// path under a prefix, with no body. It sits in front of a net/http
// server: those requests are read, answered by the handler and written
// on the connection without net/http's per-request machinery (a
// background reader, header sorting, two writes per response), which was
// half of the CPU of a small cached response. The first request on a
// connection that the fast path does not take hands the connection, with
// the bytes already read, to the net/http server for the rest of its
// life, so net/http answers everything else exactly as before.
//
// The handler is told what it may rely on: a fast request carries only
// the headers the handler said it reads (Config.Headers), and its
// ResponseWriter is an http.Flusher and a FileSender. Unlike net/http's,
// it does not sniff a Content-Type for a response without one.
package fastpath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	// HTTP is the server of the connections the fast path hands over.
	// Its ReadHeaderTimeout, ReadTimeout, IdleTimeout and WriteTimeout
	// apply to the fast path too, and its Shutdown and Close end the fast
	// path's connections as well as its own. Required.
	HTTP *http.Server
	// Handler answers the fast requests. Nil means HTTP.Handler, which
	// then is required.
	Handler http.Handler
	// Headers are the request headers Handler reads, in any case: a fast
	// request carries these and no others, so Handler must read no other
	// from a request it gets on the fast path. A request with one of
	// them twice goes to net/http. Host, Connection and the headers of a
	// request body or protocol change are the fast path's own and may
	// not be listed. At most 64; empty means none.
	Headers []string
	// Prefixes are the beginnings of the paths the fast path takes;
	// Handler must answer a GET or HEAD of any path under one of them
	// with Headers alone. Empty means any path.
	Prefixes []string
	// Answered, when not nil, is called for every request the fast path
	// answers.
	Answered func()
	// HandedOver, when not nil, is called for every connection the fast
	// path hands over to HTTP.
	HandedOver func()
	// Logger receives accept errors, handler panics, and at debug level
	// requests held long enough to watch for their client leaving. Nil
	// means discard.
	Logger *slog.Logger
}

// Server is the fast path in front of one http.Server. It is safe for
// concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	parser parser
	date   dateCache // every response's Date
}

// maxHeaders is the most Config.Headers: a connection keeps which of
// them its last request had in a uint64 (conn.present).
const maxHeaders = 64

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.HTTP == nil {
		return nil, errors.New("fastpath: HTTP is required")
	}
	if cfg.Handler == nil {
		cfg.Handler = cfg.HTTP.Handler
	}
	if cfg.Handler == nil {
		return nil, errors.New("fastpath: a Handler, or HTTP.Handler, is required")
	}
	for _, p := range cfg.Prefixes {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("fastpath: prefix %q does not start with /", p)
		}
	}
	if len(cfg.Headers) > maxHeaders {
		return nil, fmt.Errorf("fastpath: %d Headers, more than %d", len(cfg.Headers), maxHeaders)
	}
	names := make([]string, 0, len(cfg.Headers))
	for _, n := range cfg.Headers {
		b := []byte(n)
		if len(b) == 0 || bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x80 || !isTokenChar(byte(r)) }) {
			return nil, fmt.Errorf("fastpath: %q is not a header name", n)
		}
		if equalFold(b, "Host") || equalFold(b, "Connection") || isFraming(b) {
			return nil, fmt.Errorf("fastpath: %s is the fast path's own header", n)
		}
		names = append(names, http.CanonicalHeaderKey(n))
	}
	cfg.Headers = names
	if cfg.Answered == nil {
		cfg.Answered = func() {}
	}
	if cfg.HandedOver == nil {
		cfg.HandedOver = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: cfg.Logger, parser: parser{prefixes: cfg.Prefixes, names: names}}, nil
}

// FileSender is implemented by the http.ResponseWriter of fast requests:
// a handler type-asserts it to send a body with sendfile(2), the kernel
// moving a file's pages into the socket instead of the body being copied
// from the heap.
type FileSender interface {
	// SendFile sends the whole body, size bytes from the start of the
	// file open as fd, which the handler declared by its Content-Length:
	// the response head leaves with the first bytes. It returns the body
	// bytes sent, and reports false, having sent nothing, when it
	// cannot (a HEAD, a status without a body, a Content-Length other
	// than size, a connection that is no socket, a system without
	// sendfile): the handler then writes the body. fd must stay open
	// until it returns.
	SendFile(fd int, size int64) (int64, bool)
}

// shutdownGrace bounds how long, once Serve's listener is closed, a
// request held by the handler may still wait before its context is
// canceled.
const shutdownGrace = 10 * time.Second

// Serve serves the connections of ln, the fast path first, until HTTP is
// shut down or closed. Plain TCP only: for TLS use HTTP.ServeTLS.
//
// Like http.Server.Serve it returns http.ErrServerClosed after Shutdown
// or Close; it returns once the fast path's connections have ended as
// well: idle ones at once, busy ones after their response (a held
// request waits at most shutdownGrace).
func (s *Server) Serve(ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{
		s:       s,
		ln:      ln,
		ctx:     ctx,
		handoff: make(chan net.Conn),
		closed:  make(chan struct{}),
		conns:   map[*conn]struct{}{},
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.accept(&wg) }()
	err := s.cfg.HTTP.Serve(l)
	l.Close()
	timer := time.AfterFunc(shutdownGrace, cancel)
	wg.Wait()
	timer.Stop()
	cancel()
	return err
}

// Package ingest is the RTMP side of the server: it accepts publishers on
// rtmp://HOST:PORT/live/{stream} (and rtmps:// when configured), checks
// what they send, and hands their access units to a Handler. It also holds
// a publisher (Publish) that pushes a file over RTMP, used by the demo
// stream, by tests and by load generators.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives the streams that publishers push. It is declared here, by
// its consumer; the origin implements it.
type Handler interface {
	// Publish is called once a publisher has announced its tracks (in the
	// order video, audio). began is when its media began to arrive: the
	// tracks are known only after the first seconds of it were read, so
	// it, not the time of the call, is the wall-clock time of the first
	// frame. A non-nil error refuses the stream: its text is sent to the
	// publisher.
	Publish(name string, tracks []codecs.Codec, began time.Time) (Session, error)
}

// Session receives one publisher's access units. Its methods are called from
// one goroutine; track indexes refer to the slice given to Publish.
type Session interface {
	// WriteVideo adds a video access unit (NAL units without prefixes).
	WriteVideo(track int, pts, dts time.Duration, au [][]byte) error
	// WriteAudio adds an audio access unit.
	WriteAudio(track int, pts time.Duration, au []byte) error
	// Close ends the stream: the publisher stopped publishing, was
	// refused, or the server is shutting down.
	Close()
	// Drop ends the session without ending the stream: the publisher's
	// connection broke (or went silent) without it unpublishing, and an
	// encoder that reconnects should find its stream still live.
	Drop()
}

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on. Empty means ":1935".
	Addr string
	// Listener, when not nil, is used instead of listening on Addr.
	Listener net.Listener
	// TLSAddr, when not empty, is a second TCP address to listen on, for
	// RTMPS: RTMP inside TLS, as OBS and ffmpeg send to rtmps:// URLs.
	// TLSConfig, required with it, gives the certificate. Empty means no
	// RTMPS.
	TLSAddr   string
	TLSConfig *tls.Config
	// Handler receives published streams. Required.
	Handler Handler
	// Authorize, when not nil, decides whether a publisher may publish: it
	// is called once the stream name is known, before anything is
	// reserved, with a context bounded by ReadTimeout. An error refuses
	// the publisher with its text (see KeyAuthorizer, HTTPAuthorizer).
	// Nil means anyone may publish any free name.
	Authorize func(context.Context, PublishRequest) error
	// App is the RTMP application publishers must use. Empty means "live".
	App string
	// MaxConns bounds concurrent RTMP connections, publishing or not yet.
	// Zero means 1000.
	MaxConns int
	// MaxPending bounds the connections that have not published yet
	// (handshake, connect, publish, authorization), so that publishers
	// always have MaxConns - MaxPending places that idle or
	// unauthenticated connections cannot take. When a bound on
	// connections is reached, a new connection closes the connection not
	// publishing yet that has been silent the longest (a publisher's
	// handshake is silent for a round trip at a time; a connection opened
	// to hold a place, from the start); it is refused only when MaxConns
	// publishers are connected. Zero means half of MaxConns; it must not
	// be above MaxConns.
	MaxPending int
	// MaxPendingPerAddr bounds the connections that have not published
	// yet from one address (an IPv4 address, an IPv6 /64) as MaxPending
	// does for all, so that one client cannot take the places of others.
	// Connections that publish do not count: several encoders behind one
	// NAT publish as many streams as they like, only not more than this
	// many handshakes at once. Loopback addresses are not bounded (a
	// proxy or TLS terminator on this host connects everyone from there,
	// a load generator starts many publishers at once), only by
	// MaxPending. Zero means 8; negative means no bound per address
	// (behind a proxy elsewhere that connects everyone from its address).
	MaxPendingPerAddr int
	// PublishTimeout bounds the time from a connection's accept to its
	// publish command: the RTMP handshake, connect, createStream and
	// publish, which encoders send in a fraction of a second. Zero means
	// 5 s.
	PublishTimeout time.Duration
	// ReadTimeout bounds the wait for the next message from a publisher,
	// authorization, and a reconnecting publisher's wait for its previous
	// connection's stream to finish closing (PublishTimeout bounds what
	// comes before: the handshake and the publish command). Zero means
	// 10 s.
	ReadTimeout time.Duration
	// TakeoverAfter is how long a publisher may send nothing before a new
	// publisher of the same stream replaces it: an encoder that lost its
	// connection reconnects while the old one still looks open to us. A
	// publisher that is sending is never replaced; the newcomer is
	// refused. Zero means 2 s; negative means never (a silent publisher
	// keeps its stream until ReadTimeout).
	TakeoverAfter time.Duration
	// Registerer receives the server's Prometheus metrics (connections,
	// those not publishing yet, publishers, refusals by reason,
	// takeovers, bytes received). Nil means none.
	Registerer prometheus.Registerer
	// Logger receives connection events. Nil means discard. Connections
	// that end before they publish are logged at most once per kind
	// every 10 s, the others of the kind summed up in one line.
	Logger *slog.Logger
}

// Server is an RTMP server accepting publishers. It is safe for concurrent use.
type Server struct {
	cfg      Config
	ln       net.Listener
	tlsLn    net.Listener // nil without TLSAddr
	log      *slog.Logger
	metrics  *metrics
	refusals *refusalLog

	mu sync.Mutex
	// active maps stream names to the connection publishing them; guarded by mu.
	active map[string]*conn
	// conns holds every open connection but those evicted (closed
	// already), so Run can close them; guarded by mu.
	conns map[*conn]struct{}
	// pending holds the open connections that have not published yet;
	// guarded by mu.
	pending pendingConns

	wg sync.WaitGroup // connection goroutines
}

// New validates cfg and starts listening; Run serves.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("ingest: Handler is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":1935"
	}
	if cfg.App == "" {
		cfg.App = "live"
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1000
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = max(cfg.MaxConns/2, 1)
	}
	if cfg.MaxPending > cfg.MaxConns {
		return nil, fmt.Errorf("ingest: MaxPending %d is above MaxConns %d", cfg.MaxPending, cfg.MaxConns)
	}
	if cfg.MaxPendingPerAddr == 0 {
		cfg.MaxPendingPerAddr = 8
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.TakeoverAfter == 0 {
		cfg.TakeoverAfter = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if cfg.TLSAddr != "" && cfg.TLSConfig == nil {
		return nil, errors.New("ingest: TLSAddr needs a TLSConfig")
	}
	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("ingest: listen: %w", err)
		}
	}
	var tlsLn net.Listener
	if cfg.TLSAddr != "" {
		raw, err := net.Listen("tcp", cfg.TLSAddr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("ingest: listen rtmps: %w", err), ln.Close())
		}
		tlsLn = tls.NewListener(raw, cfg.TLSConfig)
	}
	return &Server{
		cfg:      cfg,
		ln:       ln,
		tlsLn:    tlsLn,
		log:      cfg.Logger,
		metrics:  m,
		refusals: &refusalLog{log: cfg.Logger},
		active:   make(map[string]*conn),
		conns:    make(map[*conn]struct{}),
	}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// TLSAddr returns the address of RTMPS, or nil without TLSAddr.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Run accepts connections until ctx is done, then closes every connection
// (ending their streams cleanly) and waits for them.
func (s *Server) Run(ctx context.Context) error {
	lns := []net.Listener{s.ln}
	if s.tlsLn != nil {
		lns = append(lns, s.tlsLn)
	}
	stop := make(chan struct{})
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		for _, ln := range lns {
			ln.Close()
		}
	}()
	go func() {
		defer s.wg.Done()
		s.refusals.runFlush(stop)
	}()
	// One accept loop per listener; the first to end ends the others.
	ended := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { ended <- s.accept(ctx, ln) }()
	}
	err := <-ended
	close(stop)
	for range len(lns) - 1 {
		<-ended
	}

	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.refusals.flush() // what the connections closed above logged

	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ingest: accept: %w", err)
}

// accept serves the connections of ln until it fails or is closed.
func (s *Server) accept(ctx context.Context, ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		c := &conn{srv: s, ctx: ctx, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()),
			ending: make(chan struct{}), released: make(chan struct{})}
		c.addr, c.local = addrKey(nc.RemoteAddr())
		c.lastRead.Store(time.Now().UnixNano())
		s.mu.Lock()
		err = s.admitLocked(c)
		s.mu.Unlock()
		if err != nil {
			s.refuseConn(c, err)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.run()
		}()
	}
}

// reserve claims name for c, which then publishes; it fails when another
// connection publishes name.
// A connection whose publisher has gone but whose stream is still closing
// (ending) is waited for, up to ReadTimeout: a publisher that reconnects
// at once, as soon as its stream shows ended, is not refused for that.
// One silent for TakeoverAfter is closed, and then waited for likewise.
func (s *Server) reserve(name string, c *conn) bool {
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		old, busy := s.active[name]
		if !busy {
			s.active[name] = c
			s.publishedLocked(c)
		}
		s.mu.Unlock()
		if !busy {
			s.metrics.publishers.Inc()
			return true
		}
		select {
		case <-old.ending:
		default:
			silent := old.silence()
			if s.cfg.TakeoverAfter < 0 || silent < s.cfg.TakeoverAfter {
				return false // still publishing
			}
			c.log.Warn("replacing the stream's silent publisher", "stream", name,
				"silent", silent.Round(time.Millisecond), "old_remote", old.nc.RemoteAddr().String())
			s.metrics.takeovers.Inc()
			old.nc.Close() // its read fails, its stream ends, it lets go of the name
		}
		if timeout == nil {
			c.log.Debug("waiting for the stream's previous publisher to finish closing", "stream", name)
			t := time.NewTimer(s.cfg.ReadTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-old.released:
		case <-timeout:
			return false
		}
	}
}

// release forgets c and the name it held.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.name != "" && s.active[c.name] == c {
		delete(s.active, c.name)
		s.metrics.publishers.Dec()
	}
	s.forgetLocked(c)
	close(c.released)
}

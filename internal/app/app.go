package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/golivestream/live/ingest"
	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/publisher"
	"github.com/golivestream/live/transcode"
	"github.com/golivestream/live/web"
)

// Config configures an App.
type Config struct {
	// RTMPAddr is where publishers connect. Empty means ":1935".
	RTMPAddr string
	// RTMPSAddr is where publishers connect with RTMPS (RTMP in TLS, as
	// rtmps:// URLs in OBS and ffmpeg), with the certificate of
	// TLSCertFile and TLSKeyFile, which it requires. Empty means no RTMPS.
	RTMPSAddr string
	// HTTPAddr is where players connect with plain HTTP. Empty means
	// ":8080".
	HTTPAddr string
	// HTTPSAddr is where players connect with HTTPS (HTTP/2 and
	// HTTP/1.1), served as HTTPAddr is, with the certificate of
	// TLSCertFile and TLSKeyFile, which it requires. Empty means no HTTPS.
	HTTPSAddr string
	// TLSCertFile and TLSKeyFile, PEM files, are the certificate of
	// HTTPSAddr and RTMPSAddr; the files are read again when they change.
	// Setting them without either address is an error. Empty means none.
	TLSCertFile, TLSKeyFile string
	// Demo publishes the bundled clip in a loop as stream DemoStream.
	Demo bool
	// PublishKey, when set, is the key every publisher must give as its
	// "key" parameter (stream key "NAME?key=KEY"); the demo gives it.
	// PublishAuthURL, when set, is an HTTP service asked about each
	// publisher instead (see ingest.HTTPAuthorizer). Empty (both) means
	// anyone may publish; at most one may be set.
	PublishKey, PublishAuthURL string
	// Origin configures the origin; its Logger and Registerer are set by New.
	Origin origin.Config
	// PoP, when not nil, puts a PoP cache in front of the origin: HTTPAddr
	// serves the PoP and the origin listens on a loopback port of its own.
	// Its Origins, Logger and Registerer are set by New.
	PoP *pop.Config
	// Transcode, when not nil, adds a transcoded ladder to every stream (see
	// package transcode); nil passes streams through as published. Its
	// Origin, SegmentDuration, Logger and Registerer are set by New.
	Transcode *transcode.Config
	// ShutdownTimeout bounds the wait for HTTP requests in flight at
	// shutdown. Zero means 10 s.
	ShutdownTimeout time.Duration
	// Logger receives everything the parts log. Nil means discard.
	Logger *slog.Logger
}

// DemoStream is the name of the demo stream.
const DemoStream = "demo"

// App is the all-in-one server: RTMP ingest, packager and origin in one
// process, optionally behind a PoP.
type App struct {
	cfg    Config
	log    *slog.Logger
	ingest *ingest.Server
	origin *origin.Server
	// transcoder is nil without Config.Transcode.
	transcoder *transcode.Transcoder
	pop        *pop.Server // nil without a PoP
	// servers are the HTTP servers: the players' plain one first, then
	// their HTTPS one (with Config.HTTPSAddr), then the origin's own
	// (with a PoP).
	servers []*httpServer
}

// httpServer is an HTTP server with its listener.
type httpServer struct {
	ln  net.Listener
	srv *http.Server
	// tls is set when srv serves HTTPS with its TLSConfig. (Serve sets up
	// a TLSConfig of its own for HTTP/2, so that is no sign.)
	tls bool
	// fast is the PoP whose fast path answers plain HTTP/1.1 media
	// requests on this server (pop.Server.Serve); nil for none.
	fast *pop.Server
}

// New builds the parts and opens the listeners.
func New(cfg Config) (*App, error) {
	if cfg.RTMPAddr == "" {
		cfg.RTMPAddr = ":1935"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":8080"
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ocfg := cfg.Origin
	ocfg.Logger = cfg.Logger.With("part", "origin")
	ocfg.Registerer = reg
	org, err := origin.New(ocfg)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Logger, origin: org}
	wcfg := web.Config{
		Streams:    func(context.Context) ([]streaminfo.Stream, error) { return org.Streams(), nil },
		Logger:     cfg.Logger.With("part", "web"),
		Registerer: reg,
	}
	// front is what players reach: the PoP, or the origin itself.
	var front http.Handler = org
	if cfg.PoP != nil {
		// The origin's own server, on loopback, so the PoP knows where it is.
		srv, err := a.listen("127.0.0.1:0", org)
		if err != nil {
			return nil, err
		}
		pcfg := *cfg.PoP
		pcfg.Origins = []string{"http://" + srv.ln.Addr().String()}
		pcfg.Logger = cfg.Logger.With("part", "pop")
		pcfg.Registerer = reg
		p, err := pop.New(pcfg)
		if err != nil {
			return nil, errors.Join(err, a.closeListeners())
		}
		a.pop, front = p, p
		wcfg.PoP = p.StreamStats
	}
	pages, err := web.New(wcfg)
	if err != nil {
		return nil, errors.Join(err, a.closeListeners())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	pages.Handle(mux)
	mux.Handle("/", front)
	players := httpserve.PrefixFirst(layout.Prefix, front, mux)
	plain, err := a.listen(cfg.HTTPAddr, players)
	if err != nil {
		return nil, err
	}
	plain.fast = a.pop
	var cert *tlsfile.Cert
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if cfg.HTTPSAddr == "" && cfg.RTMPSAddr == "" {
			return nil, errors.Join(errors.New("a certificate (TLSCertFile, TLSKeyFile) is for HTTPSAddr or RTMPSAddr: set one"), a.closeListeners())
		}
		cert, err = tlsfile.New(tlsfile.Config{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, Logger: cfg.Logger})
		if err != nil {
			return nil, errors.Join(err, a.closeListeners())
		}
	}
	if cfg.HTTPSAddr != "" {
		if cert == nil {
			return nil, errors.Join(errors.New("HTTPS needs a certificate: TLSCertFile and TLSKeyFile"), a.closeListeners())
		}
		srv, err := a.listen(cfg.HTTPSAddr, players)
		if err != nil {
			return nil, err
		}
		srv.srv.TLSConfig, srv.tls = cert.ServerConfig(), true
	}
	// The players' servers first, in the order they were opened; the
	// origin's own last.
	if cfg.PoP != nil {
		a.servers = append(a.servers[1:], a.servers[0])
	}
	icfg := ingest.Config{
		Addr:       cfg.RTMPAddr,
		Registerer: reg,
		Logger:     cfg.Logger.With("part", "ingest"),
	}
	if cfg.RTMPSAddr != "" {
		if cert == nil {
			return nil, errors.Join(errors.New("RTMPS needs a certificate: TLSCertFile and TLSKeyFile"), a.closeListeners())
		}
		icfg.TLSAddr, icfg.TLSConfig = cfg.RTMPSAddr, cert.ServerConfig()
	}

	authorize, err := publishAuthorizer(cfg)
	if err != nil {
		return nil, errors.Join(err, a.closeListeners())
	}
	var streams ingest.Handler = handler{org}
	if cfg.Transcode != nil {
		tcfg := *cfg.Transcode
		tcfg.Origin = org
		tcfg.SegmentDuration = org.SegmentDuration()
		tcfg.Logger = cfg.Logger.With("part", "transcode")
		tcfg.Registerer = reg
		tc, err := transcode.New(tcfg)
		if err != nil {
			return nil, errors.Join(err, a.closeListeners())
		}
		a.transcoder, streams = tc, tc
	}
	icfg.Handler, icfg.Authorize = streams, authorize
	in, err := ingest.New(icfg)
	if err != nil {
		return nil, errors.Join(err, a.closeListeners())
	}
	a.ingest = in
	return a, nil
}

// listen opens an HTTP listener on addr for h and adds its server to
// a.servers. On failure it closes the listeners already open.
func (a *App) listen(addr string, h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("listen http: %w", err), a.closeListeners())
	}
	s := &httpServer{ln: ln, srv: httpserve.New(h, a.log)}
	a.servers = append(a.servers, s)
	return s, nil
}

// closeListeners releases the listeners of an App that will never Run.
func (a *App) closeListeners() error {
	var errs []error
	for _, s := range a.servers {
		errs = append(errs, s.ln.Close())
	}
	return errors.Join(errs...)
}

// handler adapts the origin to ingest.Handler.
type handler struct{ o *origin.Server }

func (h handler) Publish(name string, tracks []codecs.Codec) (ingest.Session, error) {
	s, err := h.o.Publish(name, tracks)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Transcoder returns the transcoder, nil when streams are not transcoded.
func (a *App) Transcoder() *transcode.Transcoder { return a.transcoder }

// Origin returns the origin, for status queries.
func (a *App) Origin() *origin.Server { return a.origin }

// Run serves until ctx is done, then shuts down gracefully: publishers are
// disconnected (their streams end with EXT-X-ENDLIST), then HTTP requests
// in flight are given ShutdownTimeout to finish, the players' first.
func (a *App) Run(ctx context.Context) error {
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	popCtx, stopPoP := context.WithCancel(context.Background())
	defer stopPoP()
	g, gctx := errgroup.WithContext(ctx)

	g.Go(func() error { return a.ingest.Run(ingestCtx) })
	if a.pop != nil {
		g.Go(func() error { return a.pop.Run(popCtx) })
	}
	for _, s := range a.servers {
		g.Go(func() error {
			serve := s.srv.Serve
			switch {
			case s.tls:
				serve = func(ln net.Listener) error { return s.srv.ServeTLS(ln, "", "") }
			case s.fast != nil:
				serve = func(ln net.Listener) error { return s.fast.Serve(s.srv, ln) }
			}
			if err := serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve http: %w", err)
			}
			return nil
		})
	}
	if a.cfg.Demo {
		g.Go(func() error { return a.runDemo(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down")
		stopIngest()
		if a.transcoder != nil {
			a.transcoder.Close() // the ladders end where they are
		}
		a.origin.Close()
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		for _, s := range a.servers {
			if err := s.srv.Shutdown(sctx); err != nil {
				s.srv.Close()
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
		}
		stopPoP()
		return errors.Join(errs...)
	})
	return g.Wait()
}

// runDemo publishes the bundled clip over RTMP to our own ingest, in a
// loop, reconnecting after failures, until ctx is done.
func (a *App) runDemo(ctx context.Context) error {
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		return fmt.Errorf("demo clip: %w", err)
	}
	target := "rtmp://" + loopbackAddr(a.RTMPAddr()) + "/live/" + DemoStream
	if a.cfg.PublishKey != "" {
		target += "?key=" + url.QueryEscape(a.cfg.PublishKey)
	}
	log := a.log.With("part", "demo")
	for {
		err := publisher.Publish(ctx, publisher.Config{URL: target, Clip: clip, Logger: log})
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("demo publisher stopped; restarting", "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/directory"
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
	// Its Origins, Logger and Registerer are the App's to set: New refuses
	// a PoP config with any of them set.
	PoP *pop.Config
	// Transcode, when not nil, adds a transcoded ladder to every stream (see
	// package transcode); nil passes streams through as published. Its
	// Origin, SegmentDuration, Logger and Registerer are the App's to set:
	// New refuses a config with any of them set.
	Transcode *transcode.Config
	// Fleet, when not nil, makes the origin one of many, registered in the
	// fleet's stream directory (app_fleet.go). Nil means it is alone.
	Fleet *Fleet
	// Archive, when not nil, archives every stream and serves its DVR
	// window, its VODs and clips (app_archive.go). Nil means none of those.
	Archive *Archive
	// Revocations, when not nil, follows the revoked sessions of the
	// PoP's token verifier (PoP.Tokens): Run runs it. Nil means none.
	Revocations *access.RevocationFile
	// DebugAddr, when not empty, is where the profiler (net/http/pprof)
	// listens. Empty means none.
	DebugAddr string
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
	// players serves players over plain HTTP (through the PoP's fast path
	// with a PoP); playersTLS over HTTPS, nil without HTTPSAddr; originHTTP
	// is the origin's own server on loopback, nil without a PoP; debug
	// serves the profiler, nil without DebugAddr.
	players, playersTLS, originHTTP, debug *httpserve.Server
	// registration is the origin's in the fleet's directory; nil without
	// Config.Fleet.
	registration *directory.Registration
	// archive is nil without Config.Archive.
	archive *appArchive
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
	if err := checkOwned(cfg); err != nil {
		return nil, err
	}
	if err := httpserve.CheckCert(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.HTTPSAddr, cfg.RTMPSAddr); err != nil {
		return nil, err
	}
	authorize, err := publishAuthorizer(cfg)
	if err != nil {
		return nil, err
	}
	var cert *tlsfile.Cert
	if cfg.TLSCertFile != "" {
		if cert, err = tlsfile.New(tlsfile.Config{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ocfg := cfg.Origin
	ocfg.Logger = cfg.Logger.With("part", "origin")
	ocfg.Registerer = reg
	arch, err := newAppArchive(cfg.Archive, reg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	arch.configure(&ocfg)
	if arch != nil && ocfg.APIToken == "" {
		cfg.Logger.Warn("anyone who reaches the origin may make and delete clips: set $" + APITokenEnv + " to ask for a bearer token")
	}
	// The directory needs the listeners' addresses, known once they are
	// open: its adapter is filled in below.
	var fleetDir *originDirectory
	if cfg.Fleet != nil {
		fleetDir = &originDirectory{setup: map[string]agreed{}}
		ocfg.Directory = fleetDir
	}
	org, err := origin.New(ocfg)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Logger, origin: org, archive: arch}
	if err := a.build(reg, org, cert, authorize); err != nil {
		return nil, errors.Join(err, a.closeListeners())
	}
	if cfg.Fleet != nil {
		if fleetDir.reg, err = a.newRegistration(cfg.Fleet, cfg.Logger.With("part", "directory")); err != nil {
			return nil, errors.Join(err, a.closeListeners())
		}
		a.registration = fleetDir.reg
	}
	return a, nil
}

// checkOwned refuses a Config that sets what New sets in the parts'
// configs itself, rather than overwrite it silently.
func checkOwned(cfg Config) error {
	switch {
	case cfg.Origin.Logger != nil || cfg.Origin.Registerer != nil:
		return errors.New("Config.Origin: Logger and Registerer are set by the App (Config.Logger)")
	case cfg.Origin.Archive != nil || cfg.Origin.ArchiveStore != nil || cfg.Origin.DVR != 0:
		return errors.New("Config.Origin: Archive, ArchiveStore and DVR are set by the App (Config.Archive)")
	case cfg.PoP != nil && (cfg.PoP.Origins != nil || cfg.PoP.Logger != nil || cfg.PoP.Registerer != nil):
		return errors.New("Config.PoP: Origins, Logger and Registerer are set by the App")
	case cfg.Transcode != nil && (cfg.Transcode.Origin != nil || cfg.Transcode.SegmentDuration != 0 ||
		cfg.Transcode.Logger != nil || cfg.Transcode.Registerer != nil):
		return errors.New("Config.Transcode: Origin, SegmentDuration, Logger and Registerer are set by the App")
	}
	return nil
}

// build makes the PoP, the pages, the HTTP servers, the ladder and ingest
// around org. On failure the caller closes the listeners it opened.
func (a *App) build(reg *prometheus.Registry, org *origin.Server, cert *tlsfile.Cert, authorize func(context.Context, ingest.PublishRequest) error) error {
	cfg := a.cfg
	wcfg := web.Config{
		Streams:    func(context.Context) ([]streaminfo.Stream, error) { return org.Streams(), nil },
		Logger:     cfg.Logger.With("part", "web"),
		Registerer: reg,
	}
	// front is what players reach: the PoP, or the origin itself.
	var front http.Handler = org
	var err error
	if cfg.PoP != nil {
		// The origin's own server, on loopback, so the PoP knows where it is.
		if a.originHTTP, err = httpserve.Listen("127.0.0.1:0", org, nil, a.log); err != nil {
			return err
		}
		pcfg := *cfg.PoP
		pcfg.Origins = []string{"http://" + a.originHTTP.Addr().String()}
		pcfg.Logger = cfg.Logger.With("part", "pop")
		pcfg.Registerer = reg
		if a.pop, err = pop.New(pcfg); err != nil {
			return err
		}
		front = a.pop
		wcfg.PoP = a.pop.StreamStats
	}
	pages, err := web.New(wcfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	pages.Handle(mux)
	a.archive.routes(mux, org)
	mux.Handle("/", front)
	players := httpserve.PrefixFirst(front, mux, layout.Prefix, layout.VODPrefix, layout.TokenPrefix)
	if a.players, err = httpserve.Listen(cfg.HTTPAddr, players, nil, a.log); err != nil {
		return err
	}
	if a.pop != nil {
		a.players.ServeWith(a.pop.Serve)
	}
	if cfg.HTTPSAddr != "" {
		if a.playersTLS, err = httpserve.Listen(cfg.HTTPSAddr, players, cert.ServerConfig(), a.log); err != nil {
			return err
		}
	}
	if cfg.DebugAddr != "" {
		if a.debug, err = httpserve.DebugServer(cfg.DebugAddr, a.log); err != nil {
			return err
		}
	}
	icfg := ingest.Config{
		Addr:       cfg.RTMPAddr,
		Registerer: reg,
		Logger:     cfg.Logger.With("part", "ingest"),
		Authorize:  authorize,
		Handler:    handler{org},
	}
	if cfg.RTMPSAddr != "" {
		icfg.TLSAddr, icfg.TLSConfig = cfg.RTMPSAddr, cert.ServerConfig()
	}
	if cfg.Transcode != nil {
		tcfg := *cfg.Transcode
		tcfg.Origin = org
		tcfg.SegmentDuration = org.SegmentDuration()
		tcfg.Logger = cfg.Logger.With("part", "transcode")
		tcfg.Registerer = reg
		if a.transcoder, err = transcode.New(tcfg); err != nil {
			return err
		}
		icfg.Handler = a.transcoder
	}
	a.ingest, err = ingest.New(icfg)
	return err
}

// servers returns the HTTP servers, the players' first.
func (a *App) servers() []*httpserve.Server {
	var out []*httpserve.Server
	for _, s := range []*httpserve.Server{a.players, a.playersTLS, a.originHTTP, a.debug} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// closeListeners releases the listeners of an App that will never Run.
func (a *App) closeListeners() error {
	var errs []error
	for _, s := range a.servers() {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// handler adapts the origin to ingest.Handler.
type handler struct{ o *origin.Server }

func (h handler) Publish(name string, tracks []codecs.Codec, began time.Time) (ingest.Session, error) {
	s, err := h.o.PublishAt(name, tracks, began)
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
	archiveCtx, stopArchive := context.WithCancel(context.Background())
	defer stopArchive()
	g, gctx := errgroup.WithContext(ctx)
	a.archive.run(archiveCtx, g)

	g.Go(func() error { return a.ingest.Run(ingestCtx) })
	if a.pop != nil {
		g.Go(func() error { return a.pop.Run(popCtx) })
	}
	for _, s := range a.servers() {
		g.Go(s.Serve)
	}
	if a.cfg.Demo {
		g.Go(func() error { return a.runDemo(gctx) })
	}
	if a.registration != nil {
		// Ends after ingest: the lease is revoked once the streams ended,
		// and PoPs go to the backups at once.
		g.Go(func() error { return a.registration.Run(popCtx) })
	}
	if a.cfg.Revocations != nil {
		g.Go(func() error { return a.cfg.Revocations.Run(popCtx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down")
		stopIngest()
		if a.transcoder != nil {
			a.transcoder.Close() // the ladders end where they are
		}
		a.origin.Close()
		stopArchive() // the streams' ends are queued: the writer drains
		err := httpserve.Shutdown(a.cfg.ShutdownTimeout, a.servers()...)
		stopPoP()
		return err
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

// Command gslb runs the global load balancer: players ask it for
// /play/{stream}/index.m3u8 (or manifest.mpd) and are redirected to the
// nearest PoP that has room; PoPs (cmd/pop -gslb URL) report their load to
// it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/gslb"
	"github.com/golivestream/live/internal/etcdflag"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/logflag"
)

func main() {
	httpAddr := flag.String("http", ":8090", "HTTP listen address for players and PoPs")
	mapFile := flag.String("map", "", "latency map file (JSON, see gslb.MapFile); empty: no map until PUT /api/map")
	interval := flag.Duration("interval", 3*time.Second, "how often PoPs report")
	horizon := flag.Duration("horizon", 3*time.Second, "age of a report's figures when it arrives: how far ahead load is predicted")
	timeout := flag.Duration("timeout", 0, "how long a silent PoP keeps getting viewers (0: 3 × -interval)")
	predictor := flag.String("predictor", "cubic", "load predictor: cubic, linear or last")
	overflow := flag.String("overflow", "", "base URL of the CDN that takes viewers when every PoP is full (empty: answer 503)")
	utilization := flag.Float64("utilization", 1, "fraction of each PoP's capacity to fill")
	viewerBPS := flag.Float64("viewer-bps", 3e6, "bits/s one viewer adds, until a PoP's reports measure it")
	trusted := flag.String("trusted-proxies", "", "CIDRs of proxies whose X-Forwarded-For is believed, comma-separated")
	control := flag.String("control-networks", "", "CIDRs allowed to report and change the map, comma-separated (empty: any)")
	etcd := etcdflag.Add(flag.CommandLine)
	logFlags := logflag.Add(flag.CommandLine)
	flag.Parse()

	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb:", err)
		os.Exit(2)
	}
	code, err := run(log, config{
		httpAddr: *httpAddr, mapFile: *mapFile, interval: *interval, horizon: *horizon, timeout: *timeout,
		predictor: *predictor, overflow: *overflow, utilization: *utilization, viewerBPS: *viewerBPS,
		trusted: *trusted, control: *control, token: os.Getenv("GSLB_TOKEN"), etcd: etcd,
	})
	if err != nil {
		log.Error("gslb", "error", err)
	}
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	httpAddr, mapFile, predictor, overflow, trusted, control, token string
	interval, horizon, timeout                                      time.Duration
	utilization, viewerBPS                                          float64
	etcd                                                            *etcdflag.Flag
}

// run serves until SIGTERM or SIGINT and returns the exit code: 2 for bad
// flags, 1 for a failure.
func run(log *slog.Logger, c config) (int, error) {
	pred, err := gslb.PredictorByName(c.predictor)
	if err != nil {
		return 2, err
	}
	trusted, err := parsePrefixes(c.trusted)
	if err != nil {
		return 2, fmt.Errorf("-trusted-proxies: %w", err)
	}
	control, err := parsePrefixes(c.control)
	if err != nil {
		return 2, fmt.Errorf("-control-networks: %w", err)
	}
	var m *gslb.Map
	if c.mapFile != "" {
		data, err := os.ReadFile(c.mapFile)
		if err != nil {
			return 2, fmt.Errorf("-map: %w", err)
		}
		if m, err = gslb.ParseMap(data); err != nil {
			return 2, fmt.Errorf("-map %s: %w", c.mapFile, err)
		}
	} else {
		log.Warn("no -map: every viewer overflows until PUT /api/map")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := gslb.New(gslb.Config{
		Map: m, Predictor: pred, Interval: c.interval, Horizon: c.horizon, Timeout: c.timeout,
		OverflowURL: c.overflow, Utilization: c.utilization, ViewerBPS: c.viewerBPS,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return 2, err
	}
	var view *directory.View
	if c.etcd.Set() {
		cli, err := c.etcd.Client()
		if err != nil {
			return 2, err
		}
		defer cli.Close()
		if view, err = directory.NewView(directory.ViewConfig{Client: cli, Logger: log, Registerer: reg}); err != nil {
			return 1, err
		}
	}
	s, err := gslb.NewServer(gslb.ServerConfig{
		Balancer: b, TrustedProxies: trusted, ControlNetworks: control, ControlToken: c.token,
		Ingest: ingestPlacer(view), Gatherer: reg, Registerer: reg, Logger: log,
	})
	if err != nil {
		return 2, err
	}
	srv, err := httpserve.Listen(c.httpAddr, s, nil, log)
	if err != nil {
		return 1, err
	}
	defer srv.Close()
	srv.HTTP.WriteTimeout = 30 * time.Second // report sessions extend their own read deadline
	srv.HTTP.RegisterOnShutdown(s.CloseSessions)
	fmt.Printf("gslb: serving on http://%s, predictor %s, map with %d networks\n", srv.Addr(), pred.Name(), m.Networks())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if view != nil {
		viewCtx, stopView := context.WithCancel(context.Background())
		viewDone := make(chan error, 1)
		go func() { viewDone <- view.Run(viewCtx) }()
		defer func() { stopView(); <-viewDone }()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		return 1, err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	if err := httpserve.Shutdown(10*time.Second, srv); err != nil {
		return 1, err
	}
	if err := <-served; err != nil {
		return 1, err
	}
	return 0, nil
}

// parsePrefixes parses a comma-separated list of CIDRs; a bare address is
// its own /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ingestPlacer places publishers with the fleet's directory: a stream's
// primary and backup origins (gslb.ServerConfig.Ingest); nil without one.
func ingestPlacer(view *directory.View) func(string) (gslb.IngestRoute, error) {
	if view == nil {
		return nil
	}
	return func(stream string) (gslb.IngestRoute, error) {
		p, err := view.Place(stream)
		if err != nil {
			return gslb.IngestRoute{}, fmt.Errorf("%w: %w", gslb.ErrNoPlacement, err)
		}
		rt := gslb.IngestRoute{Primary: strings.TrimSuffix(p.Primary.RTMPURL, "/") + "/" + stream, Live: p.Live}
		if p.Backup.ID != "" {
			rt.Backup = strings.TrimSuffix(p.Backup.RTMPURL, "/") + "/" + stream
		}
		return rt, nil
	}
}

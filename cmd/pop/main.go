// Command pop runs one PoP cache node in front of one or more origins (or
// of another PoP, for tiers). Several nodes given the same -peers share one
// key space. With -gslb, the node reports its load to the global load
// balancer and drains gracefully on SIGTERM: the balancer stops sending it
// viewers, it serves the ones it has until they are gone (or
// -drain-timeout), then exits. With -etcd, the node finds each stream's
// origins in the fleet's stream directory and, with -token-keys, denies
// the sessions revoked there (token revoke) as well as those of -revoked.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/gslb"
	"github.com/golivestream/live/internal/accessflag"
	"github.com/golivestream/live/internal/etcdflag"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/logflag"
	"github.com/golivestream/live/internal/popnode"
	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/pop"
)

func main() {
	serve := httpserve.AddFlags(flag.CommandLine, ":8081", "HTTP listen address for players and edges", "-https")
	origins := flag.String("origin", "", "origin base URLs, comma-separated, in order of preference (required)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes this node may cache")
	peers := flag.String("peers", "", "base URLs of every node of this PoP, comma-separated (empty: this node is the whole PoP)")
	self := flag.String("self", "", "this node's URL as written in -peers")
	shards := flag.Int("shards", 16, "cache partitions in this process")
	overload := flag.Duration("overload-latency", 100*time.Millisecond, "99th percentile of Go's scheduling latency above which the node, short of CPU, answers new playback sessions 503 and tells the gslb so, to keep its viewers playing (0: never)")
	var g gslbFlags
	flag.StringVar(&g.url, "gslb", "", "global load balancer base URL to report load to (empty: no reports, no draining)")
	flag.StringVar(&g.name, "name", "", "this PoP's name in the balancer's map (default: from -public-url's host and port)")
	flag.StringVar(&g.publicURL, "public-url", "", "base URL the balancer sends viewers to (default: -self, else https://HOST:PORT of -https, else http://HOST:PORT of -http)")
	flag.Int64Var(&g.capViewers, "capacity-viewers", 0, "viewers this PoP takes: beyond, new playback sessions get 503 and the gslb sends viewers elsewhere (0: no limit)")
	flag.Float64Var(&g.capBPS, "capacity-bps", 0, "egress this PoP takes, in bits/s (0: no limit)")
	flag.DurationVar(&g.interval, "report-interval", 3*time.Second, "time between load reports")
	flag.DurationVar(&g.window, "viewer-window", 5*time.Second, "a viewer is a client that asked for a playlist or segment this recently")
	flag.DurationVar(&g.drainTimeout, "drain-timeout", 60*time.Second, "after SIGTERM, the longest wait for viewers to leave")
	accessFlags := accessflag.Add(flag.CommandLine)
	etcd := etcdflag.Add(flag.CommandLine)
	keyRate := flag.Float64("key-rate", 1, "key requests of encrypted streams a client address (an IPv6 /64) may make a second, in bursts of -key-burst, then 429")
	keyBurst := flag.Int("key-burst", 10, "burst of -key-rate")
	hedge := flag.Duration("hedge-after", 2*time.Second, "with -etcd: how long a fetch from a stream's primary origin may go unanswered before its backup is asked too")
	logFlags := logflag.Add(flag.CommandLine)
	flag.Parse()

	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop:", err)
		os.Exit(2)
	}
	code, err := run(log, config{
		serve: serve, gslb: g, origins: split(*origins), peers: split(*peers), self: *self,
		cacheBytes: *cacheBytes, shards: *shards, overload: *overload, access: accessFlags, etcd: etcd, hedge: *hedge,
		keyRate: *keyRate, keyBurst: *keyBurst,
	})
	if err != nil {
		log.Error("pop", "error", err)
		if code == 2 {
			flag.Usage()
		}
	}
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	serve      *httpserve.Flags
	gslb       gslbFlags
	origins    []string
	peers      []string
	self       string
	cacheBytes int64
	shards     int
	overload   time.Duration
	access     *accessflag.Flags
	etcd       *etcdflag.Flag
	hedge      time.Duration
	keyRate    float64
	keyBurst   int
}

// run serves the node until SIGTERM or SIGINT and returns the exit code:
// 2 for a usage error, 1 for a failure.
func run(log *slog.Logger, c config) (int, error) {
	if len(c.origins) == 0 {
		return 2, errors.New("-origin is required")
	}
	if c.keyRate <= 0 || c.keyBurst <= 0 {
		return 2, errors.New("-key-rate and -key-burst must be positive")
	}
	if err := httpserve.CheckCert(*c.serve.TLSCert, *c.serve.TLSKey, *c.serve.HTTPS); err != nil {
		return 2, err
	}
	acc, err := c.access.Build(log)
	if err != nil {
		return 2, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var view *directory.View
	var revocations *directory.Revocations
	if c.etcd.Set() {
		cli, err := c.etcd.Client()
		if err != nil {
			return 2, err
		}
		defer cli.Close()
		if view, err = directory.NewView(directory.ViewConfig{Client: cli, Logger: log, Registerer: reg}); err != nil {
			return 1, err
		}
		if acc.Tokens != nil { // the sessions revoked in the directory, with -revoked's
			revocations, err = directory.NewRevocations(directory.RevocationsConfig{
				Client: cli, Logger: log, Registerer: reg,
				Apply: func(c directory.RevocationChange) { acc.ChangeDirectoryRevocations(c.Reset, c.Added, c.Removed) },
			})
			if err != nil {
				return 1, err
			}
		}
	}
	handler, node, err := popnode.NewFleet(pop.Config{
		Origins:         c.origins,
		CacheBytes:      c.cacheBytes,
		Peers:           c.peers,
		Self:            c.self,
		Shards:          c.shards,
		Logger:          log,
		OverloadLatency: c.overload,
		MaxViewers:      int(c.gslb.capViewers),
		Directory:       fleetOrigins(view),
		HedgeAfter:      c.hedge,
		KeyRate:         c.keyRate,
		KeyBurst:        c.keyBurst,
		Tokens:          acc.Tokens,
		Rules:           acc.Rules,
		TrustedProxies:  acc.TrustedProxies,
	}, reg, view)
	if err != nil {
		return 1, err
	}
	// The plain HTTP server, answered by the node's fast path, and with
	// -https the HTTPS one.
	plain, err := httpserve.Listen(*c.serve.HTTP, handler, nil, log)
	if err != nil {
		return 1, err
	}
	defer plain.Close()
	plain.ServeWith(node.Serve)
	servers := []*httpserve.Server{plain}
	if *c.serve.HTTPS != "" {
		cert, err := tlsfile.New(tlsfile.Config{CertFile: *c.serve.TLSCert, KeyFile: *c.serve.TLSKey, Logger: log})
		if err != nil {
			return 2, err
		}
		secure, err := httpserve.Listen(*c.serve.HTTPS, handler, cert.ServerConfig(), log)
		if err != nil {
			return 1, err
		}
		defer secure.Close()
		servers = append(servers, secure)
	}
	if *c.serve.Debug != "" {
		debug, err := httpserve.DebugServer(*c.serve.Debug, log)
		if err != nil {
			return 1, err
		}
		defer debug.Close()
		servers = append(servers, debug)
	}
	var reporter *gslb.Reporter
	if c.gslb.url != "" {
		public := plain
		if len(servers) > 1 && servers[1].TLS() {
			public = servers[1] // viewers' browsers want HTTPS
		}
		if reporter, err = c.gslb.reporter(node, c.self, public.Addr(), public.Scheme(), log); err != nil {
			return 2, err
		}
	}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Run(nodeCtx) }()
	defer func() { stopNode(); <-nodeDone }()
	if view != nil {
		viewDone := make(chan error, 1)
		go func() { viewDone <- view.Run(nodeCtx) }()
		defer func() { stopNode(); <-viewDone }()
	}
	if acc.Revocations != nil {
		revokedDone := make(chan error, 1)
		go func() { revokedDone <- acc.Revocations.Run(nodeCtx) }()
		defer func() { stopNode(); <-revokedDone }()
	}
	if revocations != nil {
		revokedDone := make(chan error, 1)
		go func() { revokedDone <- revocations.Run(nodeCtx) }()
		defer func() { stopNode(); <-revokedDone }()
		awaitRevocations(log, revocations, revocationsWait)
	}
	reportCtx, stopReports := context.WithCancel(context.Background())
	reportDone := make(chan error, 1)
	if reporter != nil {
		go func() { reportDone <- reporter.Run(reportCtx) }()
	} else {
		reportDone <- nil
	}
	// The report session ends before the node stops: the balancer
	// forgets this PoP at once.
	defer func() { stopReports(); <-reportDone }()
	serveDone := make(chan error, len(servers))
	for _, s := range servers {
		go func() { serveDone <- s.Serve() }()
		fmt.Printf("pop: serving on %s://%s from %s\n", s.Scheme(), s.Addr(), strings.Join(c.origins, ","))
	}

	code, failure := 0, error(nil)
	select {
	case failure = <-serveDone:
		code = 1
	case sig := <-signals:
		log.Info("shutting down", "signal", sig)
		if reporter != nil {
			drain(log, node, reporter, c.gslb, signals)
		}
	}
	if err := httpserve.Shutdown(10*time.Second, servers...); err != nil {
		log.Warn("shutdown", "error", err)
	}
	for range len(servers) - code { // a failed server has returned already
		<-serveDone
	}
	return code, failure
}

// revocationsWait is how long a starting node waits for the sessions
// revoked in the directory before it serves.
const revocationsWait = 5 * time.Second

// awaitRevocations waits until r has applied the sessions revoked in the
// directory, so that the node does not admit them while it starts, or
// for at most wait: a node that cannot reach etcd serves without them,
// and denies them once it can.
func awaitRevocations(log *slog.Logger, r *directory.Revocations, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.Ready():
	case <-t.C:
		log.Warn("serving before the sessions revoked in the directory could be read; they are denied once read", "waited", wait)
	}
}

// gslbFlags are the flags about the global load balancer.
type gslbFlags struct {
	url, name, publicURL string
	capViewers           int64
	capBPS               float64
	interval, window     time.Duration
	drainTimeout         time.Duration
}

// reporter builds the load reporter, filling in the defaults of -name
// and -public-url (whose scheme is that of addr's server).
func (g gslbFlags) reporter(node *pop.Server, self string, addr net.Addr, scheme string, log *slog.Logger) (*gslb.Reporter, error) {
	public, err := publicURL(g.publicURL, self, addr, scheme)
	if err != nil {
		return nil, err
	}
	name := g.name
	if name == "" {
		u, err := url.Parse(public)
		if err != nil {
			return nil, fmt.Errorf("-public-url: %w", err)
		}
		name = popName(u.Host)
	}
	log.Info("reporting load to the gslb", "gslb", g.url, "name", name, "public_url", public)
	return gslb.NewReporter(gslb.ReporterConfig{
		URL:             g.url,
		Name:            name,
		PublicURL:       public,
		CapacityViewers: g.capViewers,
		CapacityBPS:     g.capBPS,
		Interval:        g.interval,
		Load: func() (int64, int64) {
			l := node.Load(g.window)
			return int64(l.Viewers), l.BytesServed
		},
		Overloaded: node.Overloaded,
		Token:      os.Getenv("GSLB_TOKEN"),
		Logger:     log,
	})
}

// publicURL is the base URL viewers are sent to: -public-url, else
// -self, else scheme://HOST:PORT of addr, with this machine's name for an
// unspecified IP.
func publicURL(flagURL, self string, addr net.Addr, scheme string) (string, error) {
	public := flagURL
	if public == "" {
		public = self
	}
	if public == "" {
		host, port, err := net.SplitHostPort(addr.String())
		if err != nil {
			return "", fmt.Errorf("-public-url: %w", err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			if host, err = os.Hostname(); err != nil {
				return "", fmt.Errorf("-public-url: %w", err)
			}
		}
		public = scheme + "://" + net.JoinHostPort(host, port)
	}
	return strings.TrimRight(public, "/"), nil
}

// popName turns a host and port into a PoP name: characters a name may
// not hold become '-'.
func popName(hostport string) string {
	b := []byte(strings.Trim(hostport, "[]"))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b[:min(len(b), 64)]), "-")
}

// drain asks the balancer for no new viewers, then waits until this node
// has none left (no client asked for anything within -viewer-window),
// -drain-timeout passes, or another signal comes. Viewers leave by time
// passing, not by an event, so the count is checked a few times a window.
func drain(log *slog.Logger, node *pop.Server, r *gslb.Reporter, g gslbFlags, signals <-chan os.Signal) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := r.Drain(ctx); err != nil {
		log.Warn("the gslb did not acknowledge draining", "error", err)
	} else {
		log.Info("draining: the gslb sends no new viewers")
	}
	cancel()
	deadline := time.NewTimer(g.drainTimeout)
	defer deadline.Stop()
	check := time.NewTicker(max(min(g.window/4, 250*time.Millisecond), 10*time.Millisecond))
	defer check.Stop()
	for {
		n := node.Load(g.window).Viewers
		if n == 0 {
			log.Info("drained: no viewers left")
			return
		}
		select {
		case <-deadline.C:
			log.Warn("drain timeout: viewers still here", "viewers", n)
			return
		case sig := <-signals:
			log.Warn("not waiting for viewers", "signal", sig, "viewers", n)
			return
		case <-check.C:
		}
	}
}

// split parses a comma-separated list.
func split(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// viewOrigins is the fleet's directory as the PoP asks it
// (pop.Directory): a stream's origins' base URLs.
type viewOrigins struct{ v *directory.View }

func (o viewOrigins) Origins(stream string) (string, string, bool) {
	primary, backup, ok := o.v.Lookup(stream)
	return primary.PublicURL, backup.PublicURL, ok
}

func (o viewOrigins) Some() (string, bool) {
	for _, org := range o.v.Snapshot().Origins() { // the first by ID: the same every time
		return org.PublicURL, true
	}
	return "", false
}

// fleetOrigins is view as a pop.Directory, nil without one.
func fleetOrigins(view *directory.View) pop.Directory {
	if view == nil {
		return nil
	}
	return viewOrigins{view}
}

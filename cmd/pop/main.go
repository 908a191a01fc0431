// Command pop runs one PoP cache node in front of one or more origins (or
// of another PoP, for tiers). Several nodes given the same -peers share one
// key space. With -gslb, the node reports its load to the global load
// balancer and drains gracefully on SIGTERM: the balancer stops sending it
// viewers, it serves the ones it has until they are gone (or
// -drain-timeout), then exits.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/golivestream/live/gslb"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/logflag"
	"github.com/golivestream/live/internal/popnode"
	"github.com/golivestream/live/internal/tlsfile"
	"github.com/golivestream/live/pop"
)

func main() {
	httpAddr := flag.String("http", ":8081", "HTTP listen address for players and edges")
	origins := flag.String("origin", "", "origin base URLs, comma-separated, in order of preference (required)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes this node may cache")
	peers := flag.String("peers", "", "base URLs of every node of this PoP, comma-separated (empty: this node is the whole PoP)")
	self := flag.String("self", "", "this node's URL as written in -peers")
	shards := flag.Int("shards", 16, "cache partitions in this process")
	httpsAddr := flag.String("https", "", "HTTPS (and HTTP/2) listen address serving what -http serves, with the certificate of -tls-cert (empty: no HTTPS)")
	tlsCert := flag.String("tls-cert", "", "PEM certificate chain of -https (read again when the file changes)")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	var g gslbFlags
	flag.StringVar(&g.url, "gslb", "", "global load balancer base URL to report load to (empty: no reports, no draining)")
	flag.StringVar(&g.name, "name", "", "this PoP's name in the balancer's map (default: from -public-url's host and port)")
	flag.StringVar(&g.publicURL, "public-url", "", "base URL the balancer sends viewers to (default: -self, else https://HOST:PORT of -https, else http://HOST:PORT of -http)")
	flag.Int64Var(&g.capViewers, "capacity-viewers", 0, "viewers this PoP takes (0: no limit)")
	flag.Float64Var(&g.capBPS, "capacity-bps", 0, "egress this PoP takes, in bits/s (0: no limit)")
	flag.DurationVar(&g.interval, "report-interval", 3*time.Second, "time between load reports")
	flag.DurationVar(&g.window, "viewer-window", 5*time.Second, "a viewer is a client that asked for a playlist or segment this recently")
	flag.DurationVar(&g.drainTimeout, "drain-timeout", 60*time.Second, "after SIGTERM, the longest wait for viewers to leave")
	logFlags := logflag.Add(flag.CommandLine)
	flag.Parse()

	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop:", err)
		os.Exit(2)
	}
	if *origins == "" {
		fmt.Fprintln(os.Stderr, "pop: -origin is required")
		flag.Usage()
		os.Exit(2)
	}
	if (*tlsCert != "" || *tlsKey != "") != (*httpsAddr != "") {
		fmt.Fprintln(os.Stderr, "pop: -https and -tls-cert, -tls-key go together")
		os.Exit(2)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, node, err := popnode.New(pop.Config{
		Origins:    split(*origins),
		CacheBytes: *cacheBytes,
		Peers:      split(*peers),
		Self:       *self,
		Shards:     *shards,
		Logger:     log,
	}, reg)
	if err != nil {
		log.Error("start", "error", err)
		os.Exit(1)
	}
	// servers are the plain HTTP one, answered by the node's fast path,
	// and with -https the HTTPS one.
	var servers []server
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Error("listen", "error", err)
		os.Exit(1)
	}
	servers = append(servers, server{"http", ln, newHTTPServer(handler, log, nil)})
	if *httpsAddr != "" {
		cert, err := tlsfile.New(tlsfile.Config{CertFile: *tlsCert, KeyFile: *tlsKey, Logger: log})
		if err != nil {
			log.Error("start", "error", err)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", *httpsAddr)
		if err != nil {
			log.Error("listen", "error", err)
			os.Exit(1)
		}
		servers = append(servers, server{"https", ln, newHTTPServer(handler, log, cert.ServerConfig())})
	}
	var reporter *gslb.Reporter
	if g.url != "" {
		public := servers[len(servers)-1] // viewers' browsers want HTTPS
		if reporter, err = g.reporter(node, *self, public.ln.Addr(), public.scheme, log); err != nil {
			log.Error("start", "error", err)
			os.Exit(2)
		}
	}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Run(nodeCtx) }()
	reportCtx, stopReports := context.WithCancel(context.Background())
	reportDone := make(chan error, 1)
	if reporter != nil {
		go func() { reportDone <- reporter.Run(reportCtx) }()
	} else {
		reportDone <- nil
	}
	serveDone := make(chan error, len(servers))
	for _, s := range servers {
		if s.scheme == "https" {
			go func() { serveDone <- s.srv.ServeTLS(s.ln, "", "") }()
		} else {
			go func() { serveDone <- node.Serve(s.srv, s.ln) }()
		}
		fmt.Printf("pop: serving on %s://%s from %s\n", s.scheme, s.ln.Addr(), *origins)
	}

	code, serving := 0, len(servers)
	select {
	case err := <-serveDone:
		log.Error("serve", "error", err)
		code, serving = 1, serving-1
	case sig := <-signals:
		log.Info("shutting down", "signal", sig)
		if reporter != nil {
			drain(log, node, reporter, g, signals)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, s := range servers {
			if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("shutdown", "error", err)
			}
		}
		cancel()
	}
	for _, s := range servers {
		s.srv.Close() // after a failure, or a Shutdown past its time
	}
	for range serving {
		<-serveDone
	}
	stopReports() // ends the report session: the balancer forgets this PoP
	<-reportDone
	stopNode()
	<-nodeDone
	os.Exit(code)
}

// server is one of the node's HTTP servers with its listener.
type server struct {
	scheme string // "http" or "https"
	ln     net.Listener
	srv    *http.Server
}

// newHTTPServer returns the server of one listener; tlsConfig is nil for
// plain HTTP.
func newHTTPServer(h http.Handler, log *slog.Logger, tlsConfig *tls.Config) *http.Server {
	srv := httpserve.New(h, log)
	srv.TLSConfig = tlsConfig
	return srv
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
		Token:  os.Getenv("GSLB_TOKEN"),
		Logger: log,
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

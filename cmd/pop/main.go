// Command pop runs one PoP cache node in front of one or more origins (or
// of another PoP, for tiers). Several nodes given the same -peers share one
// key space.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/golivestream/live"
	"github.com/golivestream/live/pop"
)

func main() {
	httpAddr := flag.String("http", ":8081", "HTTP listen address for players and edges")
	origins := flag.String("origin", "", "origin base URLs, comma-separated, in order of preference (required)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes this node may cache")
	peers := flag.String("peers", "", "base URLs of every node of this PoP, comma-separated (empty: this node is the whole PoP)")
	self := flag.String("self", "", "this node's URL as written in -peers")
	shards := flag.Int("shards", 16, "cache partitions in this process")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *origins == "" {
		fmt.Fprintln(os.Stderr, "pop: -origin is required")
		flag.Usage()
		os.Exit(2)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, node, err := live.NewPoPNode(pop.Config{
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
	srv := &http.Server{
		Addr:              *httpAddr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Run(nodeCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.ListenAndServe() }()
	fmt.Printf("pop: serving on %s from %s\n", *httpAddr, *origins)

	code := 0
	select {
	case err := <-serveDone:
		log.Error("serve", "error", err)
		code = 1
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("shutdown", "error", err)
		}
		cancel()
	}
	stopNode()
	<-nodeDone
	os.Exit(code)
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

// Command dircost is the directory-cost phase of the failover benchmark
// (bench/failover/run.sh): it plays one side of a large fleet's stream
// directory against a real etcd, in steady state, so that the script can
// measure what keeping the directory costs, apart from any media:
//
//	dircost -etcd URL -role origins [-origins 10] [-streams 1000]
//	dircost -etcd URL -role views [-views 20] [-lookups]
//
// Role origins runs -origins Registrations (package directory, as
// cmd/origin -etcd runs one), each with its own etcd client as each
// origin process has, and lists -streams streams on them, each on two
// (primary and backup), advancing every stream's newest segment each
// second and changing every origin's load each time it is measured.
// Role views runs -views Views (as each cmd/pop -etcd and cmd/gslb runs
// one), each with its own client; with -lookups, a goroutine looks
// streams up as fast as it can, as PoPs do on every upstream fetch.
//
// Each prints "ready" once its side is in place (the views: once each
// lists every stream with its backup), then runs until SIGTERM or
// SIGINT, or -max at most, and prints what it did. The script measures
// CPU from /proc and etcd's requests from etcd's /metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/internal/etcdflag"
)

func main() {
	etcd := etcdflag.Add(flag.CommandLine)
	role := flag.String("role", "", "origins or views (required)")
	origins := flag.Int("origins", 10, "origins: Registrations to run")
	streams := flag.Int("streams", 1000, "streams listed, each on two origins (views wait for them all)")
	views := flag.Int("views", 20, "views: Views to run")
	lookups := flag.Bool("lookups", false, "views: look streams up as fast as one goroutine can")
	maxRun := flag.Duration("max", 10*time.Minute, "stop after this long at most")
	flag.Parse()
	if !etcd.Set() || *origins < 2 || *streams < 1 || *views < 1 || *maxRun <= 0 {
		fmt.Fprintln(os.Stderr, "dircost: -etcd is required; -origins must be 2 or more, -streams, -views and -max positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()
	var err error
	switch *role {
	case "origins":
		err = runOrigins(ctx, etcd, *origins, *streams)
	case "views":
		err = runViews(ctx, etcd, *views, *streams, *lookups)
	default:
		err = fmt.Errorf("-role %q: want origins or views", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dircost:", err)
		os.Exit(1)
	}
}

// group runs functions until ctx ends and keeps the first error that is
// not ctx's.
type group struct {
	wg   sync.WaitGroup
	mu   sync.Mutex // protects err
	err  error
	clis []*clientv3.Client
}

func (g *group) start(run func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := run(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

// wait waits for every function, then closes the clients.
func (g *group) wait() error {
	g.wg.Wait()
	for _, c := range g.clis {
		c.Close()
	}
	return g.err
}

func runOrigins(ctx context.Context, etcd *etcdflag.Flag, n, streams int) error {
	ctx, cancel := context.WithCancel(ctx)
	g := &group{}
	defer func() { cancel(); g.wait() }()
	var bps atomic.Int64 // the load changes every time it is measured
	regs := make([]*directory.Registration, n)
	for i := range regs {
		cli, err := etcd.Client() // one client each, as each process has
		if err != nil {
			return err
		}
		g.clis = append(g.clis, cli)
		id := fmt.Sprintf("cost-o%d", i)
		regs[i], err = directory.NewRegistration(directory.RegistrationConfig{
			Client: cli, ID: id, Zone: fmt.Sprintf("z%d", i%5),
			PublicURL: "http://" + id + ".invalid:8081", RTMPURL: "rtmp://" + id + ".invalid:1935/live",
			Load: func() directory.Load {
				return directory.Load{Streams: 2 * streams / n, IngestBPS: float64(bps.Add(1000))}
			},
		})
		if err != nil {
			return err
		}
		g.start(func() error { return regs[i].Run(ctx) })
	}
	segment := uint64(1)
	setAll := func() error {
		for s := range streams {
			name := fmt.Sprintf("cost%d", s)
			if err := regs[s%n].SetStream(name, directory.StreamState{Epoch: "e1", Role: directory.RolePrimary, NewestSegment: segment}); err != nil {
				return err
			}
			if err := regs[(s+1)%n].SetStream(name, directory.StreamState{Epoch: "e1", Role: directory.RoleBackup, NewestSegment: segment}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := setAll(); err != nil {
		return err
	}
	for _, r := range regs {
		if err := awaitRegistered(ctx, r); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("origins: %d, streams %d, newest segment %d\n", n, streams, segment)
			return nil
		case <-tick.C:
			segment++
			if err := setAll(); err != nil {
				return err
			}
		}
	}
}

// awaitRegistered waits until r holds a lease with its keys written.
func awaitRegistered(ctx context.Context, r *directory.Registration) error {
	for {
		st, changed := r.Status()
		if st.Registered {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("not registered: %w (%v)", ctx.Err(), st.Err)
		}
	}
}

func runViews(ctx context.Context, etcd *etcdflag.Flag, n, streams int, lookups bool) error {
	ctx, cancel := context.WithCancel(ctx)
	g := &group{}
	defer func() { cancel(); g.wait() }()
	vs := make([]*directory.View, n)
	for i := range vs {
		cli, err := etcd.Client() // one client each, as each process has
		if err != nil {
			return err
		}
		g.clis = append(g.clis, cli)
		if vs[i], err = directory.NewView(directory.ViewConfig{Client: cli}); err != nil {
			return err
		}
		g.start(func() error { return vs[i].Run(ctx) })
	}
	last := fmt.Sprintf("cost%d", streams-1)
	for _, v := range vs {
		for {
			changed := v.Changed()
			if s := v.Snapshot(); s.Streams() >= streams {
				if _, b, ok := s.Lookup(last); ok && b.ID != "" {
					break
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return fmt.Errorf("views: the directory never listed %d streams: %w", streams, ctx.Err())
			}
		}
	}
	fmt.Println("ready")
	var done atomic.Int64
	began := time.Now()
	if lookups {
		names := make([]string, streams)
		for i := range names {
			names[i] = fmt.Sprintf("cost%d", i)
		}
		g.start(func() error {
			rng := rand.New(rand.NewPCG(1, 1))
			for ctx.Err() == nil {
				for range 1000 {
					if _, _, ok := vs[rng.IntN(n)].Lookup(names[rng.IntN(streams)]); !ok {
						return errors.New("a lookup failed")
					}
				}
				done.Add(1000)
			}
			return nil
		})
	}
	<-ctx.Done()
	secs := time.Since(began).Seconds()
	fmt.Printf("views: %d, lookups %d (%.0f/s)\n", n, done.Load(), float64(done.Load())/secs)
	return nil
}

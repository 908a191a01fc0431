// Package pop is a PoP (edge) cache for live HLS and DASH: a transparent
// HTTP cache for the origin's URL layout, built so that one request per
// object reaches upstream however many players ask at once.
//
// A PoP has two layers. The proxy layer takes client requests and finds
// the object's owner by consistent hashing of the URL over the PoP's nodes
// (Config.Peers); the cache layer is a byte-bounded LRU split in shards,
// each with its own singleflight group. Concurrent requests for a missing
// object share one upstream fetch whose body they read while it arrives.
// A node that does not own a key forwards to its owner, through a proxy
// layer cache that keeps hot objects, so one owner's NIC is not the limit.
package pop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/internal/fastpath"
	"github.com/golivestream/live/internal/promreg"
)

// HopHeader marks a request forwarded by a PoP node to the key's owner; the
// owner serves it from its own cache and never forwards it again.
const HopHeader = "X-Pop-Hop"

// Config configures a Server.
type Config struct {
	// Origins are the base URLs to fill from (another PoP works too), in
	// order of preference; each is health-checked and the next is tried
	// when one fails. Required.
	Origins []string
	// CacheBytes bounds the bytes of cached bodies (plus a small overhead
	// per object). Zero means 1 GiB.
	CacheBytes int64
	// Shards is the number of cache partitions in this process. Zero means 16.
	Shards int
	// Peers are the base URLs of every node sharing this PoP's key space,
	// this one included; empty means this process is the whole PoP.
	Peers []string
	// Self is this node's URL as it appears in Peers. Required with Peers.
	Self string
	// MissRate and MissBurst bound, per client address (per /64 for
	// IPv6), the upstream fetches of objects the node neither holds nor
	// knows to exist from a manifest it saw lately: a token bucket of
	// MissBurst tokens refilled at MissRate per second. Players ask for
	// what manifests list, which never counts; this catches requests for
	// random segment numbers or stream names, each of which would cost an
	// origin fetch. A request over the budget gets 429 with Retry-After.
	// Zero means 20 per second and a burst of 40; a negative MissRate
	// means no bound.
	MissRate  float64
	MissBurst int
	// OverloadLatency and MaxViewers decide when the node is overloaded
	// and takes no new playback sessions (admission.go): when, over half
	// a second, Go's scheduling latency had a 99th percentile above
	// OverloadLatency (the node is short of CPU), or it served MaxViewers
	// viewers. Zero OverloadLatency means never for that reason (cmd/pop
	// sets 50 ms); zero MaxViewers means no bound on viewers.
	OverloadLatency time.Duration
	MaxViewers      int
	// Directory, when not nil, locates each stream's origins in a fleet
	// (fleet.go): fetches go to the stream's primary, and to its backup
	// when the primary fails. Origins are still asked for streams the
	// directory does not know. Nil means Origins only.
	Directory Directory
	// HedgeAfter is how long a fetch from a stream's primary origin may
	// go without an answer before its backup is asked too: one segment
	// past the due time of a held next segment. Zero means 2 s.
	HedgeAfter time.Duration
	// Tokens checks the playback tokens of the streams whose origin says
	// they need one (access.go). Nil means no token is ever valid here:
	// such streams are denied.
	Tokens *access.Verifier
	// Rules are the client networks this node serves, for every stream
	// (each stream may have rules of its own, from its origin). Nil means
	// everyone.
	Rules *access.Rules
	// TrustedProxies are the networks of proxies whose X-Forwarded-For
	// names the client, for Rules and token checks. Nil means none: the
	// client is the connection's peer.
	TrustedProxies *access.Networks
	// HotThreshold is how many requests for a key owned by another node
	// this node must see before it keeps a copy. Zero means 4.
	HotThreshold int
	// MinTTL is the shortest lifetime of a cached playlist, used when the
	// origin says max-age=0. Zero means 100 ms.
	MinTTL time.Duration
	// NegativeTTL is how long a 404 is cached. Zero means 500 ms.
	NegativeTTL time.Duration
	// FetchTimeout bounds one upstream transfer. Zero means 30 s.
	FetchTimeout time.Duration
	// KeyRate and KeyBurst bound the key requests of encrypted streams
	// (keys.go) per client address (per /64 for IPv6): KeyRate a second,
	// in bursts of KeyBurst, then 429. Zero means 1 a second and bursts
	// of 10.
	KeyRate  float64
	KeyBurst int
	// HealthInterval is the period of origin health checks. Zero means 2 s.
	HealthInterval time.Duration
	// Transport sends upstream requests. Nil means a transport tuned for
	// many concurrent fills to few hosts.
	Transport http.RoundTripper
	// Logger receives events. Nil means discard.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

// Server is one PoP node. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	origins *upstream
	client  *http.Client

	// ring and proxy are nil when the node is a whole PoP by itself.
	ring  *ring
	self  string
	local *cache
	proxy *cache

	prefetcher *prefetcher
	// windows is what the manifests this node saw list (window.go).
	windows knownWindows
	// budget bounds the fetches of objects not known to exist; nil for
	// no bound (route.go).
	budget *missBudget
	// admission says whether the node takes new sessions (admission.go).
	admission *admission
	// policies are the streams' access rules as their origin said them;
	// invalid bounds the invalid tokens a client may send (access.go).
	policies policies
	invalid  *missBudget
	// keys bounds the key requests of each client address (keys.go).
	keys  *missBudget
	stats streamStats
	load  *loadMeter // viewers and bytes served, for Load (load.go)
	// fetchFromOrigin is s.fetchOrigin, bound once: a method value made
	// per request would allocate.
	fetchFromOrigin fetchFunc

	// ctx is the parent of every upstream fetch; stop cancels it.
	ctx  context.Context
	stop context.CancelFunc
	// crew owns the health checks, fills and prefetches.
	crew crew
}

// New validates cfg and returns a Server ready to serve; Run checks the
// origins' health and, when its context ends, stops every fetch.
func New(cfg Config) (*Server, error) {
	targets, err := parseTargets(cfg.Origins)
	if err != nil {
		return nil, fmt.Errorf("pop: %w", err)
	}
	if len(targets) == 0 {
		return nil, errors.New("pop: at least one origin is required")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 16
	}
	if cfg.MissRate == 0 {
		cfg.MissRate = 20
	}
	if cfg.MissBurst <= 0 {
		cfg.MissBurst = 40
	}
	if cfg.HotThreshold <= 0 {
		cfg.HotThreshold = 4
	}
	if cfg.MinTTL <= 0 {
		cfg.MinTTL = 100 * time.Millisecond
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 500 * time.Millisecond
	}
	if cfg.HedgeAfter <= 0 {
		cfg.HedgeAfter = 2 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:                 nil,
			DialContext:           fastpath.DialContext(&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}),
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 15 * time.Second, // above the origin's 3-segment hold
			DisableCompression:    true,
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("pop: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		client:  &http.Client{Transport: cfg.Transport, CheckRedirect: noRedirects},
		ctx:     ctx,
		stop:    stop,
		load:    newLoadMeter(),
	}
	s.origins = &upstream{targets: targets, client: s.client, log: s.log}
	s.fetchFromOrigin = s.fetchOrigin
	s.prefetcher = newPrefetcher(s)
	if cfg.MissRate > 0 {
		s.budget = newMissBudget(cfg.MissRate, cfg.MissBurst)
	}
	s.invalid = newMissBudget(invalidTokenRate, invalidTokenBurst)
	s.keys = newMissBudget(cmp.Or(cfg.KeyRate, defaultKeyRate), cmp.Or(cfg.KeyBurst, defaultKeyBurst))
	s.admission = newAdmission(max(cfg.OverloadLatency, 0), max(cfg.MaxViewers, 0), defaultViewerWindow)
	var gate func(key, client string) error
	if s.budget != nil {
		gate = s.mayFetch
	}
	files := newFileBudget() // one budget of descriptors for both layers
	localBytes := cfg.CacheBytes
	if len(cfg.Peers) > 0 {
		if !contains(cfg.Peers, cfg.Self) {
			stop()
			return nil, fmt.Errorf("pop: Self %q is not among Peers %v", cfg.Self, cfg.Peers)
		}
		s.ring = newRing(cfg.Peers, 64)
		s.self = cfg.Self
		// An eighth of the budget keeps hot copies of other nodes' keys.
		hotBytes := cfg.CacheBytes / 8
		localBytes -= hotBytes
		s.proxy = newCache(cacheConfig{
			name:      "proxy",
			shards:    max(cfg.Shards/4, 1),
			maxBytes:  hotBytes,
			countKeys: true,
			admit:     func(_ *object, requests int) bool { return requests >= cfg.HotThreshold },
			metrics:   m,
			ctx:       ctx,
			crew:      &s.crew,
			files:     files,
			gate:      gate,
			// The proxy layer's manifests tell what exists too.
			onComplete: func(o *object) {
				s.noteManifest(o)
				s.offerCurrent(o)
			},
		})
	}
	s.local = newCache(cacheConfig{
		name:     "local",
		shards:   cfg.Shards,
		maxBytes: localBytes,
		metrics:  m,
		ctx:      ctx,
		crew:     &s.crew,
		files:    files,
		gate:     gate,
		// Only the owner of a manifest prefetches what it lists.
		onComplete: func(o *object) {
			s.prefetcher.onComplete(o)
			s.offerCurrent(o)
		},
	})
	if cfg.Registerer != nil {
		size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "live_pop_cache_bytes",
			Help: "Bytes held by the node's caches, against -cache-bytes.",
		}, func() float64 { return float64(s.CacheSize()) })
		latency := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "live_pop_sched_latency_p99_seconds",
			Help: "99th percentile of Go's scheduling latency over the last half second: how long runnable work waited for a CPU. Above -overload-latency the node takes no new sessions.",
		}, func() float64 { return time.Duration(s.admission.p99.Load()).Seconds() })
		taking := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "live_pop_taking_new_sessions",
			Help: "1 while the node takes new playback sessions, 0 while it is overloaded and answers them 503.",
		}, func() float64 { return boolFloat(!s.Overloaded()) })
		if err := promreg.Register(cfg.Registerer, size, latency, taking); err != nil {
			stop()
			return nil, fmt.Errorf("pop: register metrics: %w", err)
		}
	}
	return s, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Run checks the origins' health until ctx is done, then stops every
// upstream fetch and waits for their goroutines.
func (s *Server) Run(ctx context.Context) error {
	s.crew.Go(func() { s.origins.checkHealth(s.ctx, s.cfg.HealthInterval) })
	s.crew.Go(s.dropExpiredEvery)
	s.crew.Go(s.admitEvery)
	<-ctx.Done()
	s.stop()
	s.crew.Close()
	s.local.dropFiles()
	if s.proxy != nil {
		s.proxy.dropFiles()
	}
	return nil
}

// CacheSize returns the bytes held by both layers' caches.
func (s *Server) CacheSize() int64 {
	n := s.local.size()
	if s.proxy != nil {
		n += s.proxy.size()
	}
	return n
}

// get finds key in the layer that should hold it: the local cache for
// keys this node owns (or that a peer forwarded), else the proxy layer
// filled from the owner.
// client is the requesting client's address: "" for a request of the PoP
// itself or of a peer, which no miss budget bounds.
func (s *Server) get(ctx context.Context, key string, cl class, forwarded bool, client string) (*object, lookup, error) {
	if s.ring == nil || forwarded {
		return s.local.get(ctx, key, cl, s.fetchFromOrigin, client)
	}
	owner := s.ring.get(key)
	if owner == s.self {
		return s.local.get(ctx, key, cl, s.fetchFromOrigin, client)
	}
	return s.proxy.get(ctx, key, cl, func(ctx context.Context, key string, cl class) (*object, io.ReadCloser, error) {
		return s.fetchPeer(ctx, owner, key, cl)
	}, client)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

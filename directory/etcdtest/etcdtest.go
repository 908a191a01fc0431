// Package etcdtest starts a real etcd for tests: one member or a
// cluster, embedded in the test process, on 127.0.0.1 ports of its own
// with data in a temporary directory; members can be stopped and
// started again. Nothing is installed: the server is a Go module.
package etcdtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Config configures a Cluster.
type Config struct {
	// Members is the number of members. Zero means 1.
	Members int
}

// Cluster is a running etcd cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	t       testing.TB
	members []*member
	initial string // the initial-cluster flag
	token   string
}

// member is one etcd member.
type member struct {
	name, dir          string
	peerURL, clientURL url.URL

	mu sync.Mutex // protects e
	e  *embed.Etcd
}

// Start starts a cluster, ready to serve, and stops it when the test
// ends.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	n := max(cfg.Members, 1)
	c := &Cluster{t: t, token: fmt.Sprintf("etcdtest-%d", time.Now().UnixNano())}
	var initial []string
	for i := range n {
		m := &member{name: fmt.Sprintf("m%d", i), dir: t.TempDir()}
		m.peerURL = url.URL{Scheme: "http", Host: freeAddr(t)}
		m.clientURL = url.URL{Scheme: "http", Host: freeAddr(t)}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL.String())
	}
	c.initial = strings.Join(initial, ",")
	t.Cleanup(c.stopAll)
	errs := make(chan error, n)
	for _, m := range c.members {
		go func() { errs <- c.start(m, embed.ClusterStateFlagNew) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	return c
}

// freeAddr returns a 127.0.0.1 address with a port free now, below
// Linux's ephemeral range (32768-60999 by default): the port is closed
// again until etcd listens on it, and a port from that range (":0") may
// meanwhile become the local port of any outgoing connection of the
// tests running beside (TestIngestPlacement failed so: "bind: address
// already in use").
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue // taken
		}
		defer l.Close()
		return l.Addr().String()
	}
	t.Fatal("etcdtest: no free port in 20000-31999 after 100 tries")
	return ""
}

// start starts member m and waits until it is ready (a cluster's first
// members wait for a quorum).
func (c *Cluster) start(m *member, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.InitialCluster = c.initial
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = state
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("member %s: %w", m.name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("member %s not ready in 60 s", m.name)
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

// Endpoints returns the client URLs of all members, stopped or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL.String())
	}
	return eps
}

// Stop stops member i, keeping its data.
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// StartAgain starts the stopped members in is again, with their data,
// names and ports, and waits until they are ready; a member waits for a
// quorum, so members needed for one start together.
func (c *Cluster) StartAgain(is ...int) {
	c.t.Helper()
	errs := make(chan error, len(is))
	for _, i := range is {
		go func() { errs <- c.start(c.members[i], embed.ClusterStateFlagExisting) }()
	}
	for range is {
		if err := <-errs; err != nil {
			c.t.Fatalf("etcdtest: %v", err)
		}
	}
}

// Leader returns the index of the member that leads, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.members {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

func (c *Cluster) stopAll() {
	for i := range c.members {
		c.Stop(i)
	}
}

// Client returns a client of all members, closed when the test ends;
// opts are added to its gRPC dial options (a Counter's, say).
func (c *Cluster) Client(opts ...grpc.DialOption) *clientv3.Client {
	c.t.Helper()
	return NewClient(c.t, c.Endpoints(), opts...)
}

// NewClient returns a client of endpoints (a Proxy's, say), closed when
// the test ends; opts are added to its gRPC dial options.
func NewClient(t testing.TB, endpoints []string, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		DialOptions:          opts,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Package etcdflag holds the -etcd flag of the commands that share the
// fleet's stream directory (origin, pop, gslb: package directory), and
// the etcd client it makes.
package etcdflag

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Flag is -etcd.
type Flag struct{ endpoints *string }

// Add registers -etcd on fs.
func Add(fs *flag.FlagSet) *Flag {
	return &Flag{endpoints: fs.String("etcd", "", "etcd endpoints of the fleet's stream directory, comma-separated (empty: no directory)")}
}

// Set reports whether -etcd was given.
func (f *Flag) Set() bool { return strings.TrimSpace(*f.endpoints) != "" }

// Client connects to the endpoints of -etcd. Keep-alives of 2 s notice a
// member gone, so that the client moves to another at once.
func (f *Flag) Client() (*clientv3.Client, error) {
	var eps []string
	for _, e := range strings.Split(*f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("-etcd: no endpoint")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("-etcd: %w", err)
	}
	return cli, nil
}

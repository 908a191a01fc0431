package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/internal/etcdflag"
)

// directoryFlags are the flags of the subcommands that write the fleet's
// directory: -etcd, -sid, -timeout.
type directoryFlags struct {
	etcd    *etcdflag.Flag
	sid     *string
	timeout *time.Duration
}

func addDirectoryFlags(fs *flag.FlagSet) directoryFlags {
	return directoryFlags{
		etcd:    etcdflag.Add(fs),
		sid:     fs.String("sid", "", "session id, as tokens carry it (token issue -sid) (required)"),
		timeout: fs.Duration("timeout", 10*time.Second, "how long to wait for etcd"),
	}
}

// do runs f with a client of etcd and a context bounded by -timeout.
func (f directoryFlags) do(run func(context.Context, *clientv3.Client) error) error {
	if *f.timeout <= 0 {
		return fmt.Errorf("-timeout %v: want more than 0", *f.timeout)
	}
	cli, err := f.etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	return run(ctx, cli)
}

func revoke(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	df := addDirectoryFlags(fs)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the session stays revoked: at least the lifetime of its tokens (token issue -ttl), after which they admit nobody anyway")
	reason := fs.String("reason", "", "why, for people reading the directory")
	if err := parse(fs, args, 0, "etcd", "sid"); err != nil {
		return err
	}
	return df.do(func(ctx context.Context, cli *clientv3.Client) error {
		rec, err := directory.Revoke(ctx, cli, "", *df.sid, *ttl, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked\t%s\nuntil\t%s\n", *df.sid, rec.Expires.Format(time.RFC3339))
		return nil
	})
}

func unrevoke(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("unrevoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	df := addDirectoryFlags(fs)
	if err := parse(fs, args, 0, "etcd", "sid"); err != nil {
		return err
	}
	return df.do(func(ctx context.Context, cli *clientv3.Client) error {
		was, err := directory.Unrevoke(ctx, cli, "", *df.sid)
		switch {
		case err != nil:
			return err
		case !was:
			return fmt.Errorf("session %q was not revoked", *df.sid)
		}
		fmt.Fprintf(stdout, "unrevoked\t%s\n", *df.sid)
		return nil
	})
}

// Command origin runs RTMP ingest, the transcoding ladder, the CMAF
// packager and the HLS/DASH origin, without a demo stream: the datacenter
// side of the system. With -etcd it is one origin of a fleet, registered
// in the fleet's stream directory, where PoPs and the gslb find it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/golivestream/live/internal/app"
	"github.com/golivestream/live/internal/etcdflag"
)

func main() {
	flags := app.AddFlags(flag.CommandLine, "HTTP listen address for players")
	// No archive unless asked for: an origin of a fleet shares one
	// (s3://), and a local directory nobody chose would fill its disk.
	archiveFlags := app.AddArchiveFlags(flag.CommandLine, "")
	etcd := etcdflag.Add(flag.CommandLine)
	host, _ := os.Hostname()
	id := flag.String("id", host, "this origin's name in the fleet's directory (with -etcd)")
	zone := flag.String("zone", "", "this origin's failure domain: a stream's primary and backup are placed in different zones (with -etcd)")
	publicURL := flag.String("public-url", "", "HTTP base URL PoPs fetch from (with -etcd; default: http://HOST:PORT of -http)")
	rtmpURL := flag.String("rtmp-url", "", "RTMP base URL the gslb sends publishers to (with -etcd; default: rtmp://HOST:PORT/live of -rtmp)")
	flag.Parse()
	cfg, err := flags.Config(os.Stderr)
	if err == nil {
		cfg.Archive, err = archiveFlags.Archive()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	flags.WarnUnkeptKeys(cfg.Archive, cfg.Logger)
	if !etcd.Set() {
		os.Exit(app.Main(cfg, os.Stdout))
	}
	if err := flags.CheckFleet(); err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	cli, err := etcd.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	cfg.Fleet = &app.Fleet{Client: cli, ID: *id, Zone: *zone, PublicURL: *publicURL, RTMPURL: *rtmpURL}
	code := app.Main(cfg, os.Stdout)
	cli.Close()
	os.Exit(code)
}

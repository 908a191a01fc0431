// Command live is the all-in-one server: RTMP ingest, the transcoding
// ladder, CMAF packager and HLS/DASH origin in one process behind a PoP
// cache, with a demo stream.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/golivestream/live/internal/accessflag"
	"github.com/golivestream/live/internal/app"
	"github.com/golivestream/live/pop"
)

func main() {
	flags := app.AddFlags(flag.CommandLine, "HTTP listen address for players (the PoP)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes the PoP may cache")
	demo := flag.Bool("demo", true, "publish the bundled test clip in a loop as stream \"demo\"")
	accessFlags := accessflag.Add(flag.CommandLine)
	archiveFlags := app.AddArchiveFlags(flag.CommandLine, app.DefaultArchiveDir())
	flag.Parse()
	cfg, err := flags.Config(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(2)
	}
	acc, err := accessFlags.Build(cfg.Logger)
	if err == nil {
		cfg.Archive, err = archiveFlags.Archive()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(2)
	}
	flags.WarnUnkeptKeys(cfg.Archive, cfg.Logger)
	cfg.Demo = *demo
	cfg.PoP = &pop.Config{CacheBytes: *cacheBytes, Tokens: acc.Tokens, Rules: acc.Rules, TrustedProxies: acc.TrustedProxies}
	cfg.Revocations = acc.Revocations
	os.Exit(app.Main(cfg, os.Stdout))
}

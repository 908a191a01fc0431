// Command origin runs RTMP ingest, the transcoding ladder, the CMAF
// packager and the HLS/DASH origin, without a demo stream: the datacenter
// side of the system.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/golivestream/live/internal/app"
)

func main() {
	flags := app.AddFlags(flag.CommandLine, "HTTP listen address for players")
	flag.Parse()
	cfg, err := flags.Config(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	os.Exit(app.Main(cfg, os.Stdout))
}

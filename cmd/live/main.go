// Command live is the all-in-one server: RTMP ingest, the transcoding
// ladder, CMAF packager and HLS/DASH origin in one process behind a PoP
// cache, with a demo stream.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golivestream/live"
	"github.com/golivestream/live/internal/logflag"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
	"github.com/golivestream/live/transcode"
)

func main() {
	rtmpAddr := flag.String("rtmp", ":1935", "RTMP listen address for publishers")
	httpAddr := flag.String("http", ":8080", "HTTP listen address for players (the PoP)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes the PoP may cache")
	demo := flag.Bool("demo", true, "publish the bundled test clip in a loop as stream \"demo\"")
	window := flag.Duration("window", 30*time.Second, "media described by playlists per rendition")
	segment := flag.Duration("segment", time.Second, "target segment duration")
	tlsCert := flag.String("tls-cert", "", "PEM certificate chain: serve -http as HTTPS and HTTP/2 (read again when the file changes)")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	publishFlags := live.AddPublishFlags(flag.CommandLine)
	tflags := transcode.AddFlags(flag.CommandLine)
	logFlags := logflag.Add(flag.CommandLine)
	flag.Parse()
	tcfg, err := tflags.Config()
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(2)
	}
	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(2)
	}

	cfg := live.Config{
		RTMPAddr:    *rtmpAddr,
		HTTPAddr:    *httpAddr,
		TLSCertFile: *tlsCert,
		TLSKeyFile:  *tlsKey,
		Demo:        *demo,
		Origin:      origin.Config{Window: *window, SegmentDuration: *segment},
		PoP:         &pop.Config{CacheBytes: *cacheBytes},
		Transcode:   tcfg,
		Logger:      log,
	}
	publishFlags.Apply(&cfg)
	os.Exit(live.Main(cfg, os.Stdout))
}

// Command origin runs RTMP ingest, the transcoding ladder, the CMAF
// packager and the HLS/DASH origin, without a demo stream: the datacenter
// side of the system.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golivestream/live"
	"github.com/golivestream/live/internal/logflag"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/transcode"
)

func main() {
	rtmpAddr := flag.String("rtmp", ":1935", "RTMP listen address for publishers")
	httpAddr := flag.String("http", ":8080", "HTTP listen address for players")
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
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}

	cfg := live.Config{
		RTMPAddr:    *rtmpAddr,
		HTTPAddr:    *httpAddr,
		TLSCertFile: *tlsCert,
		TLSKeyFile:  *tlsKey,
		Origin:      origin.Config{Window: *window, SegmentDuration: *segment},
		Transcode:   tcfg,
		Logger:      log,
	}
	publishFlags.Apply(&cfg)
	os.Exit(live.Main(cfg, os.Stdout))
}

// Command origin runs RTMP ingest, the CMAF packager and the HLS/DASH
// origin, without a demo stream: the datacenter side of the system.
package main

import (
	"flag"
	"os"
	"time"

	"github.com/golivestream/live"
	"github.com/golivestream/live/origin"
)

func main() {
	rtmpAddr := flag.String("rtmp", ":1935", "RTMP listen address for publishers")
	httpAddr := flag.String("http", ":8080", "HTTP listen address for players")
	window := flag.Duration("window", 30*time.Second, "media described by playlists per rendition")
	segment := flag.Duration("segment", time.Second, "target segment duration")
	flag.Parse()

	os.Exit(live.Main(live.Config{
		RTMPAddr: *rtmpAddr,
		HTTPAddr: *httpAddr,
		Origin:   origin.Config{Window: *window, SegmentDuration: *segment},
	}, os.Stdout))
}

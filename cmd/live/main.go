// Command live is the all-in-one server: RTMP ingest, CMAF packager and
// HLS/DASH origin in one process behind a PoP cache, with a demo stream.
package main

import (
	"flag"
	"os"
	"time"

	"github.com/golivestream/live"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/pop"
)

func main() {
	rtmpAddr := flag.String("rtmp", ":1935", "RTMP listen address for publishers")
	httpAddr := flag.String("http", ":8080", "HTTP listen address for players (the PoP)")
	cacheBytes := flag.Int64("cache-bytes", 1<<30, "bytes the PoP may cache")
	demo := flag.Bool("demo", true, "publish the bundled test clip in a loop as stream \"demo\"")
	window := flag.Duration("window", 30*time.Second, "media described by playlists per rendition")
	segment := flag.Duration("segment", time.Second, "target segment duration")
	flag.Parse()

	os.Exit(live.Main(live.Config{
		RTMPAddr: *rtmpAddr,
		HTTPAddr: *httpAddr,
		Demo:     *demo,
		Origin:   origin.Config{Window: *window, SegmentDuration: *segment},
		PoP:      &pop.Config{CacheBytes: *cacheBytes},
	}, os.Stdout))
}

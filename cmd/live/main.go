// Command live is the all-in-one server: RTMP ingest, CMAF packager and
// HLS/DASH origin in one process behind a PoP cache, with a demo stream.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golivestream/live"
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
	tc := flag.Bool("transcode", true, "add a transcoded ladder to every stream (needs ffmpeg with libx264; off with a warning without it)")
	ladder := flag.String("ladder", "", "the ladder as HEIGHTp:BITRATE,... (default 720p:2500k,480p:1000k,240p:400k; rungs taller than the source are skipped)")
	ladderFile := flag.String("ladder-file", "", "JSON ladder file: {\"preset\": \"veryfast\", \"rungs\": [{\"name\": \"720p\", \"height\": 720, \"bitrate\": 2500000}]}")
	preset := flag.String("preset", "", "x264 preset of the ladder (default veryfast)")
	maxJobs := flag.Int("transcode-max", 0, "streams transcoded at once; the others get their source rendition only (default: number of CPUs)")
	flag.Parse()

	var tcfg *transcode.Config
	if *tc {
		tcfg = &transcode.Config{Preset: *preset, MaxJobs: *maxJobs}
		if err := ladderFlags(tcfg, *ladder, *ladderFile); err != nil {
			fmt.Fprintln(os.Stderr, "live:", err)
			os.Exit(2)
		}
	}

	os.Exit(live.Main(live.Config{
		RTMPAddr:  *rtmpAddr,
		HTTPAddr:  *httpAddr,
		Demo:      *demo,
		Origin:    origin.Config{Window: *window, SegmentDuration: *segment},
		PoP:       &pop.Config{CacheBytes: *cacheBytes},
		Transcode: tcfg,
	}, os.Stdout))
}

// ladderFlags puts -ladder or -ladder-file into cfg.
func ladderFlags(cfg *transcode.Config, ladder, file string) error {
	switch {
	case ladder != "" && file != "":
		return errors.New("-ladder and -ladder-file exclude each other")
	case ladder != "":
		rungs, err := transcode.ParseLadder(ladder)
		if err != nil {
			return fmt.Errorf("-ladder: %w", err)
		}
		cfg.Ladder = rungs
	case file != "":
		fc, err := transcode.LoadFile(file)
		if err != nil {
			return err
		}
		cfg.Ladder = fc.Rungs
		if cfg.Preset == "" {
			cfg.Preset = fc.Preset
		}
	}
	return nil
}

// Command args prints the ffmpeg arguments of a transcode run, one per
// line, for bench/transcode/run.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golivestream/live/transcode"
)

func main() {
	preset := flag.String("preset", "veryfast", "x264 preset")
	ladder := flag.String("ladder", "720p:2500k,480p:1000k,240p:400k", "the ladder")
	flag.Parse()
	rungs, err := transcode.ParseLadder(*ladder)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, a := range transcode.Args(*preset, time.Second, rungs, 0) {
		fmt.Println(a)
	}
}

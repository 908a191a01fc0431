package transcode

import (
	"errors"
	"flag"
	"fmt"
)

// Flags are the command-line flags of the transcoding stage, shared by
// cmd/live and cmd/origin.
type Flags struct {
	on      *bool
	ladder  *string
	file    *string
	preset  *string
	maxJobs *int
}

// AddFlags defines -transcode, -ladder, -ladder-file, -preset and
// -transcode-max on fs.
func AddFlags(fs *flag.FlagSet) *Flags {
	return &Flags{
		on:      fs.Bool("transcode", true, "add a transcoded ladder to every stream (needs ffmpeg with libx264; off with a warning without it)"),
		ladder:  fs.String("ladder", "", "the ladder as HEIGHTp:BITRATE,... (default 720p:2500k,480p:1000k,240p:400k; rungs taller than the source are skipped)"),
		file:    fs.String("ladder-file", "", `JSON ladder file: {"preset": "veryfast", "rungs": [{"name": "720p", "height": 720, "bitrate": 2500000}]}`),
		preset:  fs.String("preset", "", "x264 preset of the ladder (default veryfast)"),
		maxJobs: fs.Int("transcode-max", 0, "streams transcoded at once; the others get their source rendition only (default: the number of CPUs)"),
	}
}

// Config returns the configuration the flags ask for, nil with
// -transcode=false.
func (f *Flags) Config() (*Config, error) {
	if !*f.on {
		return nil, nil
	}
	cfg := &Config{Preset: *f.preset, MaxJobs: *f.maxJobs}
	switch {
	case *f.ladder != "" && *f.file != "":
		return nil, errors.New("-ladder and -ladder-file exclude each other")
	case *f.ladder != "":
		rungs, err := ParseLadder(*f.ladder)
		if err != nil {
			return nil, fmt.Errorf("-ladder: %w", err)
		}
		cfg.Ladder = rungs
	case *f.file != "":
		fc, err := LoadFile(*f.file)
		if err != nil {
			return nil, err
		}
		cfg.Ladder = fc.Rungs
		if cfg.Preset == "" {
			cfg.Preset = fc.Preset
		}
	}
	return cfg, nil
}

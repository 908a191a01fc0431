// Command loadtest runs simulated players (HLS and DASH) and RTMP
// broadcasters against the live streaming system along a scenario, prints
// a progress line every second, and at the end a report as a table (and
// as JSON and a PNG plot on request). See package loadtest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/golivestream/live/loadtest"
)

// outputs are where the report goes besides stdout.
type outputs struct {
	json, plot string
	step       int
	cpuProfile string
}

func main() {
	cfg, out, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg, out, os.Stdout))
}

// run runs the test and writes the report; it returns the exit code.
func run(cfg loadtest.Config, out outputs, stdout io.Writer) int {
	g, err := loadtest.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if out.cpuProfile != "" {
		f, err := os.Create(out.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := g.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := rep.WriteTable(stdout, out.step); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if out.json != "" {
		if err := writeFile(out.json, rep.WriteJSON); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if out.plot != "" {
		if err := writeFile(out.plot, rep.WritePNG); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// parseFlags turns the command line into a Config.
func parseFlags(args []string, stderr io.Writer) (loadtest.Config, outputs, error) {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", "http://127.0.0.1:8080", "URLs players are spread over, comma-separated: PoP nodes (path /live/ by default) or a load balancer (http://gslb/play/)")
	streams := fs.String("streams", "", "streams to watch, comma-separated (default: the broadcasters' streams)")
	scenario := fs.String("scenario", "steady", "steady, ramp, flash or schedule")
	players := fs.Int("players", 100, "players: steady count, ramp target, flash starting count")
	rampFor := fs.Duration("ramp", 30*time.Second, "ramp: time to go from 0 to -players")
	flashAfter := fs.Duration("flash-after", 30*time.Second, "flash: steady time before the crowd")
	flashWithin := fs.Duration("flash-within", 10*time.Second, "flash: time the crowd takes to arrive")
	flashFactor := fs.Int("flash-factor", 10, "flash: players multiply by this")
	schedule := fs.String("schedule", "", "schedule: file of \"AT VIEWERS\" lines or JSON [{\"at\":\"30s\",\"viewers\":100}]")
	duration := fs.Duration("duration", time.Minute, "how long players run; the tool stops by itself")
	dash := fs.Float64("dash", 0, "share of players playing DASH, 0..1 (the others play HLS)")
	lowLatency := fs.Float64("ll", 0, "share of players, HLS and DASH alike, in low-latency mode, 0..1: LL-HLS (parts, preload hints, blocking and delta playlist reloads) and low-latency DASH (chunks as they arrive)")
	rendition := fs.String("rendition", "fit", "rendition choice: fit, lowest, highest, random")
	bandwidth := fs.Int("bandwidth", 0, "per-player bandwidth in bits/s for -rendition fit (0: unlimited)")
	videoOnly := fs.Bool("video-only", false, "skip the audio rendition")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	startTimeout := fs.Duration("start-timeout", 30*time.Second, "wait this long for the streams before players start")
	broadcasters := fs.Int("broadcasters", 0, "RTMP publishers to run")
	rtmp := fs.String("rtmp", "rtmp://127.0.0.1:1935/live/", "where broadcasters publish; the stream name is appended")
	publishKey := fs.String("publish-key", "", "key broadcasters give, as the server's -publish-key asks (default: $LIVE_PUBLISH_KEY)")
	streamPrefix := fs.String("stream-prefix", "load", "broadcasters publish {prefix}{i}")
	clip := fs.String("clip", "", "MP4 or FLV file (H.264, AAC) broadcasters loop (default: the bundled demo clip)")
	broadcastFor := fs.Duration("broadcast-for", 0, "stop broadcasters this long after players start (0: the whole run)")
	metrics := fs.String("metrics", "", "PoP and origin base URLs whose /metrics to read before and after, comma-separated")
	jsonOut := fs.String("json", "", "write the report as JSON to this file")
	plotOut := fs.String("plot", "", "write the time series as a PNG to this file")
	step := fs.Int("step", 0, "seconds per row of the printed time series (0: at most 30 rows)")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	quiet := fs.Bool("quiet", false, "no progress line")
	verbose := fs.Bool("v", false, "log player and broadcaster events to stderr")
	if err := fs.Parse(args); err != nil {
		return loadtest.Config{}, outputs{}, err
	}
	if fs.NArg() > 0 {
		return loadtest.Config{}, outputs{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *publishKey == "" {
		*publishKey = os.Getenv("LIVE_PUBLISH_KEY")
	}
	cfg := loadtest.Config{
		Targets:        split(*targets),
		Streams:        split(*streams),
		Duration:       *duration,
		DASHShare:      *dash,
		LowLatency:     *lowLatency,
		Rendition:      *rendition,
		Bandwidth:      *bandwidth,
		VideoOnly:      *videoOnly,
		RequestTimeout: *timeout,
		StartTimeout:   *startTimeout,
		Broadcasters:   *broadcasters,
		RTMP:           *rtmp,
		PublishKey:     *publishKey,
		StreamPrefix:   *streamPrefix,
		BroadcastFor:   *broadcastFor,
		Metrics:        split(*metrics),
	}
	switch *scenario {
	case "steady":
		cfg.Schedule = loadtest.Steady(*players)
	case "ramp":
		cfg.Schedule = loadtest.Ramp(*players, *rampFor)
	case "flash":
		cfg.Schedule = loadtest.Flash(*players, *flashAfter, *flashWithin, *flashFactor)
	case "schedule":
		data, err := os.ReadFile(*schedule)
		if err != nil {
			return cfg, outputs{}, err
		}
		if cfg.Schedule, err = loadtest.ParseSchedule(data); err != nil {
			return cfg, outputs{}, err
		}
	default:
		return cfg, outputs{}, fmt.Errorf("unknown scenario %q", *scenario)
	}
	if *clip != "" {
		data, err := os.ReadFile(*clip)
		if err != nil {
			return cfg, outputs{}, err
		}
		cfg.Clip = data
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, outputs{json: *jsonOut, plot: *plotOut, step: *step, cpuProfile: *cpuProfile}, nil
}

// split parses a comma-separated list.
func split(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

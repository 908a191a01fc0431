// Package loadtest is a load generator for the live streaming system:
// simulated players (HLS and DASH, in low-latency mode or not: LL-HLS
// parts, preload hints and blocking reloads; low-latency DASH chunks read
// as they arrive) that behave like real ones, RTMP broadcasters,
// scenarios of viewers over time (steady, ramp, flash crowd, schedule
// files), and a report of what the players saw — requests, bytes, latency
// percentiles per object class, first-segment times, glass-to-player
// latency, stalls and the one-minute user stall rate (also of the players
// that came before a crowd and with it), errors by kind — and of what the
// PoPs and origins counted (upstream fetches per segment and per part,
// how soon held requests are answered).
//
// It is built to run 10 000 players on one small machine, so that the
// machine's CPU goes to the system under test: two goroutines per player
// (one for the audio fetched alongside the video), its own HTTP/1.1
// client with one keep-alive connection per goroutine (see lane) and no
// allocation per segment, segment bodies dropped in the kernel without a
// copy to user space (Linux), manifests parsed once per distinct body,
// and figures kept in per-second buckets of atomic counters and fixed-size
// histograms.
package loadtest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/publisher"
)

// MaxDuration bounds a run.
const MaxDuration = 2 * time.Hour

// Config configures a Generator. Players and broadcasters can run
// together or alone.
type Config struct {
	// Targets are the URLs players are spread over, round robin by
	// player: the directory holding the streams, so that a player's entry
	// URL is the target, the stream name and "/index.m3u8" or
	// "/manifest.mpd". A target without a path gets "/live/", our layout:
	// "http://127.0.0.1:8081" is "http://127.0.0.1:8081/live/". A load
	// balancer that redirects players to a PoP is given with its own path
	// ("http://gslb/play/"); players resolve every URI against the URL
	// they were redirected to, so they stay on the PoP they were sent to.
	// Required when Schedule asks for players.
	Targets []string
	// Streams are the streams watched, round robin by player. Empty means
	// the broadcasters' streams.
	Streams []string
	// Schedule says how many players run over time. Empty means none.
	Schedule Schedule
	// Duration is how long players run (and broadcasters, see
	// BroadcastFor); the run then stops by itself. Zero means 60 s; at
	// most MaxDuration.
	Duration time.Duration
	// DASHShare is the share of players that play DASH, in [0, 1]; zero
	// means every player plays HLS.
	DASHShare float64
	// LowLatency is the share of players, of HLS and of DASH alike, that
	// play in low-latency mode, in [0, 1]: LL-HLS as hls.js does with
	// lowLatencyMode (parts, preload hints, blocking and delta playlist
	// reloads), low-latency DASH as dash.js does (segments asked for
	// availabilityTimeOffset early, chunks played as they arrive). Zero
	// means none. A low-latency player of a stream that has no parts or
	// chunks plays it as the others do.
	LowLatency float64
	// Rendition is how players pick a rendition: "" or "fit" (the highest
	// whose BANDWIDTH fits Bandwidth, else the lowest), "lowest",
	// "highest" or "random".
	Rendition string
	// Bandwidth is each player's bandwidth in bits per second for "fit".
	// Zero means unlimited.
	Bandwidth int
	// VideoOnly makes players skip the audio rendition. False means they
	// fetch it alongside the video, as players do.
	VideoOnly bool
	// RequestTimeout bounds each request, body included. Zero means 10 s.
	RequestTimeout time.Duration
	// StartTimeout bounds the wait, before players start, for every
	// stream to list 3 segments (where players start). Zero means 30 s.
	StartTimeout time.Duration

	// Broadcasters is how many RTMP publishers to run. Zero means none.
	Broadcasters int
	// RTMP is the URL broadcasters publish under, the stream name
	// appended: "rtmp://127.0.0.1:1935/live/". Required with Broadcasters.
	RTMP string
	// PublishKey is the key broadcasters give, as the server's
	// -publish-key asks ({name}?key={PublishKey}). Empty means none.
	PublishKey string
	// StreamPrefix names the broadcasters' streams {StreamPrefix}{i}, i
	// from 0. Empty means "load".
	StreamPrefix string
	// Clip is the MP4 or FLV file (H.264, AAC) broadcasters publish in a
	// loop, in real time with increasing timestamps. Nil means the
	// bundled demo clip.
	Clip []byte
	// BroadcastFor stops the broadcasters that long after the players
	// start, to see what players do when a stream stops. Zero means the
	// whole run.
	BroadcastFor time.Duration

	// Metrics are URLs of PoP nodes and origins whose Prometheus metrics
	// are read before and after the run ("http://host:port", or a full
	// ".../metrics" URL). Empty means none.
	Metrics []string

	// Progress receives a progress line every second. Nil means none.
	Progress io.Writer
	// Transport, when set, is the HTTP transport players share, through
	// net/http's client, as they did before #20; it costs about twice the
	// CPU per request. Nil means the load generator's own HTTP/1.1 client:
	// two keep-alive connections per player, segment bodies dropped in the
	// kernel, timeouts by socket deadlines.
	Transport http.RoundTripper
	// Logger receives events; nil means discard.
	Logger *slog.Logger
}

// Generator runs load tests. Its Config is fixed at New; Run may be called
// more than once, not concurrently.
type Generator struct {
	cfg  Config
	log  *slog.Logger
	clip *publisher.Clip // nil without broadcasters
	// client is the players' with Config.Transport; nil means lanes.
	client *http.Client
	// metrics reads the servers' metrics.
	metrics *http.Client
}

// New validates a copy of cfg and prepares a Generator.
func New(cfg Config) (*Generator, error) {
	cfg.Targets = append([]string(nil), cfg.Targets...)
	cfg.Streams = append([]string(nil), cfg.Streams...)
	cfg.Schedule = append(Schedule(nil), cfg.Schedule...)
	cfg.Metrics = append([]string(nil), cfg.Metrics...)
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = "load"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, log: cfg.Logger}
	if cfg.Broadcasters > 0 {
		clip := cfg.Clip
		if clip == nil {
			clip = democlip.Bytes()
		}
		c, err := publisher.LoadClip(clip)
		if err != nil {
			return nil, fmt.Errorf("loadtest: clip: %w", err)
		}
		g.clip = c
	}
	if cfg.Transport != nil {
		g.client = &http.Client{Transport: cfg.Transport}
		g.metrics = g.client
	} else {
		g.metrics = &http.Client{Transport: &http.Transport{
			DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression: true,
		}}
	}
	return g, nil
}

// checkConfig validates cfg, with defaults already applied.
func checkConfig(cfg *Config) error {
	switch {
	case cfg.Duration < 0 || cfg.Duration > MaxDuration:
		return fmt.Errorf("loadtest: duration %v out of (0, %v]", cfg.Duration, MaxDuration)
	case cfg.Broadcasters < 0 || cfg.Broadcasters > 1000:
		return fmt.Errorf("loadtest: %d broadcasters (0..1000)", cfg.Broadcasters)
	case cfg.Broadcasters > 0 && !strings.HasPrefix(cfg.RTMP, "rtmp://") && !strings.HasPrefix(cfg.RTMP, "rtmps://"):
		return errors.New("loadtest: broadcasters need an rtmp:// URL")
	case math.IsNaN(cfg.DASHShare) || cfg.DASHShare < 0 || cfg.DASHShare > 1:
		return fmt.Errorf("loadtest: DASH share %v out of [0, 1]", cfg.DASHShare)
	case math.IsNaN(cfg.LowLatency) || cfg.LowLatency < 0 || cfg.LowLatency > 1:
		return fmt.Errorf("loadtest: low-latency share %v out of [0, 1]", cfg.LowLatency)
	case cfg.Bandwidth < 0:
		return errors.New("loadtest: negative bandwidth")
	case cfg.BroadcastFor < 0:
		return errors.New("loadtest: negative broadcast time")
	}
	switch cfg.Rendition {
	case "", "fit", "lowest", "highest", "random":
	default:
		return fmt.Errorf("loadtest: unknown rendition policy %q", cfg.Rendition)
	}
	if len(cfg.Schedule) > 0 {
		if err := cfg.Schedule.Validate(); err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
	}
	if cfg.Schedule.Peak() > 0 {
		if len(cfg.Targets) == 0 {
			return errors.New("loadtest: players need targets")
		}
		if len(cfg.Streams) == 0 && cfg.Broadcasters == 0 {
			return errors.New("loadtest: players need streams (or broadcasters)")
		}
	}
	if cfg.Schedule.Peak() == 0 && cfg.Broadcasters == 0 {
		return errors.New("loadtest: nothing to run: no players, no broadcasters")
	}
	for i, t := range cfg.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("loadtest: bad target %q", t)
		}
		switch {
		case u.Path == "" || u.Path == "/":
			u.Path = "/live/"
		case !strings.HasSuffix(u.Path, "/"):
			u.Path += "/"
		}
		cfg.Targets[i] = u.String()
	}
	for _, s := range cfg.Streams {
		if s == "" || strings.ContainsAny(s, "/?#") {
			return fmt.Errorf("loadtest: bad stream name %q", s)
		}
	}
	return nil
}

// streams returns the watched streams.
func (g *Generator) streams() []string {
	if len(g.cfg.Streams) > 0 {
		return g.cfg.Streams
	}
	out := make([]string, g.cfg.Broadcasters)
	for i := range out {
		out[i] = g.broadcastName(i)
	}
	return out
}

func (g *Generator) broadcastName(i int) string { return fmt.Sprintf("%s%d", g.cfg.StreamPrefix, i) }

// entryURL returns the entry URL of stream at target.
func (g *Generator) entryURL(target, stream string, dash bool) string {
	file := "index.m3u8"
	if dash {
		file = "manifest.mpd"
	}
	return target + stream + "/" + file
}

// isDASH spreads DASH players evenly: player i plays DASH when the
// fractional part of i×φ is below the share.
func isDASH(i int, share float64) bool {
	const phi = 0.6180339887498949
	_, f := math.Modf(float64(i) * phi)
	return f < share
}

// isLowLatency spreads low-latency players evenly, and independently of
// isDASH: player i is one when the fractional part of i×(√2-1) is below
// the share.
func isLowLatency(i int, share float64) bool {
	const sqrt2m1 = 0.41421356237309515
	_, f := math.Modf(float64(i) * sqrt2m1)
	return f < share
}

// kindOf returns the kind of player i.
func (g *Generator) kindOf(i int) kind {
	k := kindHLS
	if isDASH(i, g.cfg.DASHShare) {
		k = kindDASH
	}
	if isLowLatency(i, g.cfg.LowLatency) {
		k++ // kindLLHLS, kindLLDASH
	}
	return k
}

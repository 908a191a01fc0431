package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/logflag"
	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/transcode"
)

// Flags are the command-line flags shared by the commands that run an App
// (live and origin): addresses, TLS, the window, who may publish, the
// ladder and logging.
type Flags struct {
	rtmp, rtmps             *string
	serve                   *httpserve.Flags
	window, segment, part   *time.Duration
	reconnectWindow         *time.Duration
	publishKey, publishAuth *string
	private                 *string
	protect                 *ProtectFlags
	transcode               *transcode.Flags
	log                     *logflag.Flags
}

// AddFlags registers the shared flags on fs; httpUsage describes -http.
func AddFlags(fs *flag.FlagSet, httpUsage string) *Flags {
	return &Flags{
		rtmp:    fs.String("rtmp", ":1935", "RTMP listen address for publishers"),
		rtmps:   fs.String("rtmps", "", "RTMPS listen address for publishers, e.g. :1936, with the certificate of -tls-cert (empty: no RTMPS)"),
		serve:   httpserve.AddFlags(fs, ":8080", httpUsage, "-https and -rtmps"),
		window:  fs.Duration("window", 30*time.Second, "media described by playlists per rendition"),
		segment: fs.Duration("segment", time.Second, "target segment duration"),
		part: fs.Duration("part", 250*time.Millisecond,
			"target duration of a CMAF chunk, which is an LL-HLS part and what low-latency DASH players read at a time (a chunk closes at the first frame past it; at most -segment)"),
		reconnectWindow: fs.Duration("reconnect-window", 10*time.Second,
			"how long a stream whose publisher's connection broke stays live for it to reconnect (0: it ends at once; a publisher that stops publishing ends its stream at once)"),
		publishKey:  fs.String("publish-key", "", "key publishers must give, as stream key NAME?key=KEY (default: $LIVE_PUBLISH_KEY, which keeps it out of the process list; neither: anyone may publish)"),
		publishAuth: fs.String("publish-auth", "", "URL of an HTTP service that decides who may publish: POST call=publish&name=NAME&addr=IP&key=..., 2xx allows (empty: see -publish-key)"),
		private:     fs.String("private-streams", "", "regular expression of the stream names that need a signed playback token, checked by the PoPs (empty: every stream is public)"),
		protect:     addProtectFlags(fs),
		transcode:   transcode.AddFlags(fs),
		log:         logflag.Add(fs),
	}
}

// Config returns the configuration the parsed flags describe, logging
// to stderr; the command adds its own parts (Demo, PoP).
func (f *Flags) Config(stderr io.Writer) (Config, error) {
	tcfg, err := f.transcode.Config()
	if err != nil {
		return Config{}, err
	}
	log, err := f.log.Logger(stderr)
	if err != nil {
		return Config{}, err
	}
	if *f.part < 10*time.Millisecond || *f.part > *f.segment {
		return Config{}, fmt.Errorf("-part %v: want from 10ms to -segment (%v)", *f.part, *f.segment)
	}
	reconnect := *f.reconnectWindow
	if reconnect <= 0 {
		reconnect = -1 // the origin's zero is its default
	}
	cfg := Config{
		RTMPAddr:       *f.rtmp,
		RTMPSAddr:      *f.rtmps,
		HTTPAddr:       *f.serve.HTTP,
		HTTPSAddr:      *f.serve.HTTPS,
		TLSCertFile:    *f.serve.TLSCert,
		TLSKeyFile:     *f.serve.TLSKey,
		DebugAddr:      *f.serve.Debug,
		PublishKey:     *f.publishKey,
		PublishAuthURL: *f.publishAuth,
		Origin:         origin.Config{Window: *f.window, SegmentDuration: *f.segment, ChunkDuration: *f.part, ReconnectWindow: reconnect},
		Transcode:      tcfg,
		Logger:         log,
	}
	if *f.private != "" {
		re, err := regexp.Compile(*f.private)
		if err != nil {
			return Config{}, fmt.Errorf("-private-streams: %w", err)
		}
		cfg.Origin.Access = func(name string) origin.Access { return origin.Access{Private: re.MatchString(name)} }
	}
	if cfg.PublishKey == "" {
		cfg.PublishKey = os.Getenv("LIVE_PUBLISH_KEY")
	}
	cfg.Origin.APIToken = os.Getenv(APITokenEnv)
	if cfg.Origin.Protection, _, err = f.protect.protection(); err != nil {
		return Config{}, err
	}
	if cfg.Origin.Protection != nil && *f.private == "" {
		log.Warn("encrypted streams are public (no -private-streams): their keys go to anyone who asks")
	}
	return cfg, nil
}

// APITokenEnv holds the bearer token the origin's API asks for before it
// changes the archive (origin.Config.APIToken): an environment variable,
// not a flag, so that it is not in the process list.
const APITokenEnv = "LIVE_API_TOKEN"

// WarnUnkeptKeys logs a WARN when streams are encrypted with keys derived
// from a random secret (no -key-secret nor $LIVE_KEY_SECRET) and
// archived (a, nil without an archive): their VODs, clips and DVR windows
// play only as long as this process runs, as no later origin can derive
// their keys. The archive keeps no key (issue #25).
func (f *Flags) WarnUnkeptKeys(a *Archive, log *slog.Logger) {
	if a == nil {
		return
	}
	if p, shared, err := f.protect.protection(); err == nil && p != nil && !shared {
		log.Warn("encrypted streams are archived with keys of a random secret: their VODs will not play once this process ends; give -key-secret or $" + keySecretEnv)
	}
}

// CheckFleet refuses, for an origin of a fleet, encryption with keys that
// only this process knows: the origins that serve a stream together
// (dual hot ingest) must encrypt it to the same bytes, with the same
// keys, derived from a secret they share (-key-secret).
func (f *Flags) CheckFleet() error {
	if _, shared, err := f.protect.protection(); err != nil || shared {
		return err
	}
	if *f.protect.encrypt || *f.protect.encryptStreams != "" {
		return errors.New("an origin of a fleet encrypting streams needs the fleet's key secret: -key-secret or $" + keySecretEnv)
	}
	return nil
}

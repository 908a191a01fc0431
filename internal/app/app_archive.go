package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/dirstore"
	"github.com/golivestream/live/archive/s3store"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/origin"
)

// Archive configures the archive of an App (issue #24): every stream
// written to Store as it runs, its DVR window, its VODs and clips.
type Archive struct {
	// Store is where the archive is (OpenStore). Required.
	Store store.Store
	// Writer tunes the writer: its queue bounds, workers and retries.
	// Its Store, Logger and Registerer are the App's to set: New refuses
	// a config with any of them set. The zero value is the writer's
	// defaults.
	Writer archive.WriterConfig
	// DVR is how far back players may rewind a live stream (the origin's
	// Config.DVR). Zero means no DVR window.
	DVR time.Duration
	// Retention is how long an ended epoch is kept, unless a clip pins
	// it (archive.Sweeper). Zero means forever: no sweeps.
	Retention time.Duration
	// SweepInterval is the time between two retention sweeps. Zero means
	// an hour.
	SweepInterval time.Duration
}

// appArchive is an App's archive: the writer the origin queues to and
// the sweeper of the retention; nil without Config.Archive.
type appArchive struct {
	cfg     *Archive
	writer  *archive.Writer
	sweeper *archive.Sweeper // nil without a retention
}

// newAppArchive builds the archive of cfg (nil: none), its metrics on
// reg.
func newAppArchive(cfg *Archive, reg prometheus.Registerer, log *slog.Logger) (*appArchive, error) {
	if cfg == nil {
		return nil, nil
	}
	wcfg := cfg.Writer
	if cfg.Store == nil || wcfg.Store != nil || wcfg.Logger != nil || wcfg.Registerer != nil {
		return nil, errors.New("Config.Archive: Store is required; the Writer's Store, Logger and Registerer are set by the App")
	}
	log = log.With("part", "archive")
	wcfg.Store, wcfg.Logger, wcfg.Registerer = cfg.Store, log, reg
	w, err := archive.NewWriter(wcfg)
	if err != nil {
		return nil, err
	}
	a := &appArchive{cfg: cfg, writer: w}
	if cfg.Retention > 0 {
		a.sweeper, err = archive.NewSweeper(archive.SweeperConfig{
			Store: cfg.Store, Retention: cfg.Retention, Interval: cfg.SweepInterval, Logger: log, Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// configure sets the archive's fields of the origin's config.
func (a *appArchive) configure(ocfg *origin.Config) {
	if a == nil {
		return
	}
	ocfg.Archive, ocfg.ArchiveStore, ocfg.DVR = a.writer, a.cfg.Store, a.cfg.DVR
}

// routes sends the archive's APIs straight to the origin, past the PoP,
// which passes only GET and HEAD through: clips are made with POST and
// deleted with DELETE.
func (a *appArchive) routes(mux *http.ServeMux, org http.Handler) {
	if a == nil {
		return
	}
	for _, p := range []string{"/api/vods", "/api/clips", "/api/clips/"} {
		mux.Handle(p, org)
	}
}

// run writes and sweeps until ctx is done; the writer then drains its
// queue for up to its DrainTimeout. The App cancels ctx once the
// origin has closed, so that the streams' last segments and ends are
// queued first.
func (a *appArchive) run(ctx context.Context, g interface{ Go(func() error) }) {
	if a == nil {
		return
	}
	g.Go(func() error { return a.writer.Run(ctx) })
	if a.sweeper != nil {
		g.Go(func() error { return a.sweeper.Run(ctx) })
	}
}

// OpenStore opens the archive store that where names: an S3 URL,
// s3://bucket/prefix, through s3 (its URL is set here), or a directory,
// whose writes noSync leaves unsynced (dirstore.Config.NoSync).
func OpenStore(where string, s3 s3store.Config, noSync bool) (store.Store, error) {
	if strings.HasPrefix(where, "s3://") {
		s3.URL = where
		return s3store.New(s3)
	}
	return dirstore.New(dirstore.Config{Dir: where, NoSync: noSync})
}

// DefaultArchiveDir is cmd/live's archive: "golivestream/archive" in
// the user's cache directory ($XDG_CACHE_HOME, ~/.cache), or "" when
// there is none.
func DefaultArchiveDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "golivestream", "archive")
}

// ArchiveFlags are the archive's command-line flags, shared by live and
// origin.
type ArchiveFlags struct {
	where, endpoint, region *string
	insecure, pathStyle     *bool
	fsync                   *bool
	dvr, retention          *time.Duration
}

// AddArchiveFlags registers the archive's flags on fs; def is -archive's
// default ("" for none).
func AddArchiveFlags(fs *flag.FlagSet, def string) *ArchiveFlags {
	return &ArchiveFlags{
		where: fs.String("archive", def, "where every stream is archived, for DVR, VOD and clips: a directory, or s3://bucket/prefix (empty: no archive)"),
		endpoint: fs.String("archive-s3-endpoint", "", "S3 service host[:port] of an s3:// -archive (empty: s3.amazonaws.com); "+
			"credentials from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, else $MINIO_ACCESS_KEY and $MINIO_SECRET_KEY, else the instance's IAM role"),
		region:    fs.String("archive-s3-region", "", "the bucket's region (empty: asked of the service)"),
		insecure:  fs.Bool("archive-s3-insecure", false, "plain HTTP to -archive-s3-endpoint (a local MinIO)"),
		pathStyle: fs.Bool("archive-s3-path-style", false, "bucket in the path, not the host name (default: virtual hosts on AWS, paths elsewhere)"),
		fsync: fs.Bool("archive-fsync", true, "sync what an -archive directory gets before it is indexed, so that a crash of the machine "+
			"loses nothing indexed (false: the kernel writes it back when it will, outside the process; a crash of the process alone loses nothing either way)"),
		dvr:       fs.Duration("dvr", 0, "how far back players may rewind a live stream, in its DVR manifests (dvr.m3u8, dvr.mpd); needs -archive, longer than -window (0: none)"),
		retention: fs.Duration("retention", 168*time.Hour, "how long an ended stream stays archived, unless a clip pins it (0: forever)"),
	}
}

// Archive returns the archive the parsed flags describe; nil for none.
func (f *ArchiveFlags) Archive() (*Archive, error) {
	if *f.where == "" {
		if *f.dvr > 0 {
			return nil, errors.New("-dvr needs -archive")
		}
		return nil, nil
	}
	if *f.dvr < 0 || *f.retention < 0 {
		return nil, errors.New("-dvr and -retention must not be negative")
	}
	st, err := OpenStore(*f.where, s3store.Config{
		Endpoint: *f.endpoint, Region: *f.region, Insecure: *f.insecure, PathStyle: *f.pathStyle,
	}, !*f.fsync)
	if err != nil {
		return nil, fmt.Errorf("-archive: %w", err)
	}
	return &Archive{Store: st, DVR: *f.dvr, Retention: *f.retention}, nil
}

// Where returns the -archive the flags were given.
func (f *ArchiveFlags) Where() string { return *f.where }

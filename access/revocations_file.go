package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// RevocationFileConfig configures a RevocationFile.
type RevocationFileConfig struct {
	// Path is the revocation list (see ParseRevocations). Required.
	Path string
	// Apply receives each set read. Required: a PoP gives its
	// Verifier's SetRevocations.
	Apply func(*RevocationSet)
	// Interval is how often Run looks at the file: the time a revocation
	// takes to reach the Verifier. Zero means two seconds.
	Interval time.Duration
	// Logger receives each list read and each failure to read one. Nil
	// means discard.
	Logger *slog.Logger
}

// RevocationFile follows a revocation list on disk: it reads it again
// when it changes (another modification time or size, or another file:
// replace it by renaming a new one over it, so that it is never read half
// written). A list that cannot be read leaves the last one in force. It is
// safe for concurrent use.
type RevocationFile struct {
	cfg RevocationFileConfig
	log *slog.Logger

	mu      sync.Mutex
	last    os.FileInfo // guarded by mu: the file last applied, nil before
	lastErr string      // guarded by mu: the failure last logged
}

// NewRevocationFile returns a RevocationFile configured by a copy of cfg.
// Call Load to read the list a first time, then Run.
func NewRevocationFile(cfg RevocationFileConfig) (*RevocationFile, error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("revocation file: no path")
	case cfg.Apply == nil:
		return nil, errors.New("revocation file: no Apply")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("revocation file: interval %v < 0", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	f := &RevocationFile{cfg: cfg, log: cfg.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.log = f.log.With("revocations", cfg.Path)
	return f, nil
}

// Load reads the list and applies it, unless the file is the one applied
// last, unchanged. It reports whether it applied a list.
func (f *RevocationFile) Load() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, err := os.Stat(f.cfg.Path); err == nil && f.sameLocked(fi) {
		return false, nil
	}
	file, err := os.Open(f.cfg.Path)
	if err != nil {
		return false, err
	}
	defer file.Close()
	// The state of the file opened, not of the path: a newer file renamed
	// over it after this is seen at the next Load.
	fi, err := file.Stat()
	if err != nil {
		return false, err
	}
	rs, err := readRevocations(file, f.cfg.Path)
	if err != nil {
		return false, err
	}
	f.cfg.Apply(rs)
	f.last, f.lastErr = fi, ""
	f.log.Info("revocations loaded", "sessions", rs.Len())
	return true, nil
}

// sameLocked reports whether fi is the file applied last, unchanged.
func (f *RevocationFile) sameLocked(fi os.FileInfo) bool {
	return f.last != nil && os.SameFile(f.last, fi) && fi.ModTime().Equal(f.last.ModTime()) && fi.Size() == f.last.Size()
}

// Run loads the list every Interval until ctx is done, then returns nil.
// Failures are logged, once until the next success or another failure.
func (f *RevocationFile) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := f.Load(); err != nil {
			f.mu.Lock()
			if err.Error() != f.lastErr {
				f.lastErr = err.Error()
				f.log.Warn("revocations not loaded: the last list stays in force", "error", err)
			}
			f.mu.Unlock()
		}
	}
}

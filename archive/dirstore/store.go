// Package dirstore is an archive store in a directory of the local disk:
// one file per object, at the object's key below the directory.
//
// Writes are atomic and, unless Config.NoSync, durable before they
// return: Put writes a temporary file beside the object (".tmp-*",
// hidden from List), fsyncs it, renames it over the object and fsyncs
// the directory; an appended file (OpenAppend) is fdatasynced at each
// Sync, and fsynced into its directory when created; directories
// created on the way are fsynced into their parents. So an
// object named by anything written after it (the archive's index) has
// reached the disk first. A crash can leave temporary files behind;
// DeletePrefix removes them with the rest.
//
// SyncAll makes every appended file durable at once with syncfs(2),
// which syncs the whole filesystem holding the directory. An fdatasync
// costs about the same whatever a file's size (waits for the device,
// each a costly wake-up on a virtual machine), so the archive syncs the
// store once or twice per commit rather than each epoch's pack and
// index: BenchmarkSync, 10 files of a 325 kB segment and an index line
// each, took 1.4 ms of CPU made durable with two SyncAll, 3.7 to 4.3 ms
// with an fdatasync of each (0.6 ms for the writes alone). syncfs also
// writes back what other programs left dirty on that filesystem, sooner
// than the kernel would have (in the kernel's flusher threads).
package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/golivestream/live/archive/store"
)

// Config configures a Store.
type Config struct {
	// Dir is the directory holding the objects, created (with its
	// parents) when missing. Required.
	Dir string
	// NoSync skips every fsync. False (the zero value) fsyncs each file
	// written and each directory changed before a write returns; true
	// leaves durability to the kernel (a crash may lose recent writes,
	// and an index may then name an object lost with them).
	NoSync bool
}

// Store is a directory store. It is safe for concurrent use; writers of
// one key race as renames do (the last rename wins, whole).
type Store struct {
	root string
	sync bool
	// dir is the directory, open since New (nil with NoSync): SyncAll's
	// syncfs reports the writeback errors of the filesystem since the
	// descriptor it is given was opened, so it is opened before any
	// write of the store.
	dir *os.File
}

// New opens the directory store at cfg.Dir, creating the directory.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("dirstore: Config.Dir is required")
	}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("dirstore: create %s: %w", root, err)
	}
	s := &Store{root: root, sync: !cfg.NoSync}
	if s.sync {
		if s.dir, err = os.Open(root); err != nil {
			return nil, fmt.Errorf("dirstore: %w", err)
		}
	}
	return s, nil
}

// Close releases the directory descriptor SyncAll uses. The store is
// not to be used after.
func (s *Store) Close() error {
	if s.dir == nil {
		return nil
	}
	return s.dir.Close()
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.root }

// path returns the file of key, or an error when key is not valid.
func (s *Store) path(key string) (string, error) {
	if !store.ValidKey(key) {
		return "", fmt.Errorf("%w: %q", store.ErrInvalidKey, key)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr("get "+key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, mapErr("get "+key, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	size := fi.Size()
	if off < 0 || off > size {
		return nil, fmt.Errorf("get %s: offset %d of %d bytes: %w", key, off, size, store.ErrRange)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, mapErr("get "+key, err)
	}
	return buf, nil
}

// List implements store.Store. A directory left empty (by a write that
// failed after creating it) is listed as a sub-prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Entry, error) {
	if prefix != "" && !store.ValidPrefix(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", store.ErrInvalidKey, prefix)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(prefix)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr("list "+prefix, err)
	}
	out := make([]store.Entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue // temporary files
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, mapErr("list "+prefix, err)
		}
		e := store.Entry{Key: prefix + name, ModTime: fi.ModTime()}
		switch {
		case fi.IsDir():
			e.Key += "/"
			e.Dir = true
		case fi.Mode().IsRegular():
			e.Size = fi.Size()
		default:
			continue
		}
		out = append(out, e)
	}
	// ReadDir sorts by name; "a/" sorts after "a.x" by key.
	store.Sort(out)
	return out, nil
}

// DeletePrefix implements store.Store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if !store.ValidPrefix(prefix) {
		return fmt.Errorf("%w: prefix %q", store.ErrInvalidKey, prefix)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.root, filepath.FromSlash(prefix))); err != nil {
		return mapErr("delete "+prefix, err)
	}
	return nil
}

// mapErr wraps err for op, with store.ErrNotFound for a missing file
// and store.ErrFull for a full disk or quota.
func mapErr(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", op, store.ErrNotFound, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w: %w", op, store.ErrFull, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

package dirstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/golivestream/live/archive/store"
)

// Put implements store.Store: temporary file, fsync, rename, fsync of
// the directory.
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirs(dir); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return mapErr("put "+key, err)
	}
	tmp := f.Name()
	_, err = f.Write(body)
	if err == nil && s.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return mapErr("put "+key, err)
	}
	if s.sync {
		if err := syncDir(dir); err != nil {
			return mapErr("put "+key, err)
		}
	}
	return nil
}

// OpenAppend implements store.Appender: the file stays open, each
// Append is one write at the end, each Sync one fdatasync (the file's
// size included). A file created is fsynced into its directory first.
func (s *Store) OpenAppend(ctx context.Context, key string) (store.AppendFile, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirs(filepath.Dir(p)); err == nil {
			f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		}
		if err == nil && s.sync {
			if err = syncDir(filepath.Dir(p)); err != nil {
				f.Close()
			}
		}
	}
	if err != nil {
		return nil, mapErr("open "+key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, mapErr("open "+key, err)
	}
	return &appendFile{f: f, key: key, size: fi.Size(), sync: s.sync}, nil
}

// appendFile is a file of the store open for appending.
type appendFile struct {
	f    *os.File
	key  string
	size int64 // where the next Append writes
	sync bool
}

func (a *appendFile) Size() int64 { return a.size }

// Append writes data at a.size; a failed write is cut off again (best
// effort: the next Append overwrites it anyway).
func (a *appendFile) Append(_ context.Context, data []byte) error {
	n, err := a.f.WriteAt(data, a.size)
	if err != nil {
		if n > 0 {
			a.f.Truncate(a.size) // best effort: keep lines whole
		}
		return mapErr("append "+a.key, err)
	}
	a.size += int64(n)
	return nil
}

func (a *appendFile) Sync(context.Context) error {
	if !a.sync {
		return nil
	}
	if err := syscall.Fdatasync(int(a.f.Fd())); err != nil {
		return mapErr("sync "+a.key, err)
	}
	return nil
}

// SyncAll implements store.SyncAller with one syncfs(2) of the
// directory's filesystem: what every appended file (and every other
// file there) holds is durable when it returns, and an error of any
// writeback on that filesystem since the last SyncAll fails it.
func (s *Store) SyncAll(ctx context.Context) error {
	if !s.sync {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := unix.Syncfs(int(s.dir.Fd())); err != nil {
		return mapErr("sync "+s.root, err)
	}
	return nil
}

func (a *appendFile) Close() error {
	if err := a.f.Close(); err != nil {
		return mapErr("close "+a.key, err)
	}
	return nil
}

// mkdirs creates dir and its missing parents below the root, fsyncing
// each new directory's parent so that the new entry survives a crash.
func (s *Store) mkdirs(dir string) error {
	var missing []string
	for d := dir; len(d) > len(s.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if s.sync {
			if err := syncDir(filepath.Dir(d)); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir fsyncs a directory, making the entries created or renamed in
// it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package dirstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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

// Append implements store.Appender: the data goes at the end of the
// file, which is fsynced; a failed write is cut off again, so that only
// a crash can leave part of data behind.
func (s *Store) Append(ctx context.Context, key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirs(filepath.Dir(p)); err == nil {
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			created = true
		}
	}
	if err != nil {
		return mapErr("append "+key, err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Write(data)
		if err != nil {
			f.Truncate(fi.Size()) // best effort: keep lines whole
		}
	}
	if err == nil && s.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created && s.sync {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		return mapErr("append "+key, err)
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

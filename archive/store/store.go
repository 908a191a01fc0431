// Package store is the contract between the archive and the places it
// writes to: a small object store interface (Put, Get with ranges, List,
// DeletePrefix), the optional in-place appends, the errors callers branch
// on, and the spelling of keys every implementation accepts.
//
// Implementations live in sibling packages: dirstore (a directory on the
// local disk) and s3store (an S3-compatible object store).
package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Get for a key that holds no object.
var ErrNotFound = errors.New("object not found")

// ErrFull is returned (wrapped, with the store's own error) by writes that
// failed because the store is out of space or over its quota (ENOSPC,
// EDQUOT, S3 quota errors). Writers count it apart from other failures.
var ErrFull = errors.New("store full")

// ErrRange is returned (wrapped) by Get for an offset past the object's end.
var ErrRange = errors.New("range not satisfiable")

// ErrInvalidKey is returned (wrapped) for a key or prefix that ValidKey or
// ValidPrefix refuses.
var ErrInvalidKey = errors.New("invalid key")

// Store holds immutable objects under keys. Implementations are safe for
// concurrent use. Every method honours ctx's deadline where its I/O can be
// interrupted (network stores); a local disk's reads and writes finish
// once started.
type Store interface {
	// Put writes body under key, replacing what was there. It is atomic:
	// a reader (or a restart after a crash) sees the whole body or the
	// previous object, never a part. body is not retained or modified.
	Put(ctx context.Context, key string, body []byte) error
	// Get returns n bytes of the object at key from offset off; n < 0
	// means up to the end, and a range past the end is cut there. An off
	// beyond the object's size gives ErrRange; a missing object
	// ErrNotFound.
	Get(ctx context.Context, key string, off, n int64) ([]byte, error)
	// List returns what lies directly under prefix ("" or a ValidPrefix):
	// objects, and the sub-prefixes that hold objects (Entry.Dir, Key
	// ending in "/"), in lexical order of Key. A prefix holding nothing
	// gives an empty list and no error.
	List(ctx context.Context, prefix string) ([]Entry, error)
	// DeletePrefix deletes every object whose key starts with prefix (a
	// ValidPrefix: deleting everything takes more than one call). A prefix
	// holding nothing is no error.
	DeletePrefix(ctx context.Context, prefix string) error
}

// Appender is implemented by stores that can append to an object in
// place (a local file), through a handle kept open across appends: the
// archive packs an epoch's segments into one such object and appends
// its index to another, so that a segment costs a write and a sync, not
// the creation of a file.
type Appender interface {
	// OpenAppend opens the object at key for appending, creating it
	// empty (and durably named, on a store that syncs) when missing.
	OpenAppend(ctx context.Context, key string) (AppendFile, error)
}

// SyncAller is implemented by stores that can append (Appender) and can
// make everything appended to all their open objects durable with one
// call, for much less than a Sync of each: the archive then syncs once
// per commit however many epochs it appended to.
type SyncAller interface {
	// SyncAll makes durable everything appended to any of the store's
	// objects before it began (a no-op on a store that does not sync).
	SyncAll(ctx context.Context) error
}

// AppendFile is an object open for appending, from Appender.OpenAppend.
// Its methods must not be called concurrently, except Sync, which may
// run alongside an Append (and makes durable at least what was appended
// before it began).
type AppendFile interface {
	// Size returns the object's size: where the next Append begins.
	Size() int64
	// Append adds data at the end. It either adds all of data or, when
	// it returns an error, nothing — except after a crash, which may
	// leave a prefix of data at the end of the object.
	Append(ctx context.Context, data []byte) error
	// Sync makes everything appended so far durable (a no-op on a store
	// that does not sync).
	Sync(ctx context.Context) error
	// Close releases the handle; it does not sync.
	Close() error
}

// Entry is one result of List.
type Entry struct {
	// Key is the full key; a sub-prefix's ends in "/".
	Key string
	// Dir reports a sub-prefix rather than an object.
	Dir bool
	// Size is an object's size in bytes (0 for a sub-prefix).
	Size int64
	// ModTime is when the object was last written; zero where the store
	// does not say (S3 sub-prefixes).
	ModTime time.Time
}

// Name returns the last element of e.Key, without a trailing "/".
func (e Entry) Name() string {
	k := strings.TrimSuffix(e.Key, "/")
	return k[strings.LastIndexByte(k, '/')+1:]
}

// Sort sorts entries by Key, the order List returns.
func Sort(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
}

// ValidKey reports whether key is a key every store accepts: elements
// separated by "/", each of 1 to 128 characters of [A-Za-z0-9._-] not
// starting with "." (so no "." or "..", and room for a store's hidden
// temporary files), at most 1024 bytes in all.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > 1024 {
		return false
	}
	for elem := range strings.SplitSeq(key, "/") {
		if !validElem(elem) {
			return false
		}
	}
	return true
}

// ValidPrefix reports whether prefix is a ValidKey followed by "/".
func ValidPrefix(prefix string) bool {
	k, ok := strings.CutSuffix(prefix, "/")
	return ok && ValidKey(k)
}

func validElem(e string) bool {
	if len(e) == 0 || len(e) > 128 || e[0] == '.' {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

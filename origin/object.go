package origin

import (
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// object is one immutable HTTP body with the headers a cache needs. Once
// built it is shared by every reader without copying.
type object struct {
	body        []byte
	contentType string
	etag        string
	modTime     time.Time
	// immutable objects (init and media segments) never change at their URL.
	immutable bool
}

// Content types of what the origin serves.
const (
	typeM3U8 = "application/vnd.apple.mpegurl"
	typeMPD  = "application/dash+xml"
	typeMP4  = "video/mp4"
	typeM4A  = "audio/mp4"
)

// newObject wraps body, deriving a strong ETag from its content.
func newObject(body []byte, contentType string, modTime time.Time, immutable bool) *object {
	h := fnv.New64a()
	h.Write(body)
	return &object{
		body:        body,
		contentType: contentType,
		etag:        fmt.Sprintf(`"%016x"`, h.Sum64()),
		modTime:     modTime,
		immutable:   immutable,
	}
}

// lazyObject is an object built on first use, once: manifests are rebuilt
// for every snapshot, but only those someone asks for cost anything.
type lazyObject struct {
	once  sync.Once
	build func() *object
	obj   *object
}

func newLazy(build func() *object) *lazyObject { return &lazyObject{build: build} }

// get returns the object, building it on the first call. A nil lazyObject
// gives nil.
func (l *lazyObject) get() *object {
	if l == nil {
		return nil
	}
	l.once.Do(func() { l.obj = l.build() })
	return l.obj
}

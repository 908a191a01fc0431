package origin

import (
	"fmt"
	"hash/fnv"
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

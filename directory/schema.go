package directory

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// DefaultPrefix is the key prefix that a zero Prefix in a Config means.
const DefaultPrefix = "/golivestream/"

// Role is what an origin is for a stream it serves.
type Role string

// The roles. A stream record with no role ("") belongs to an origin that
// has agreed on the stream's epoch (AgreeEpoch) but serves nothing yet:
// it keeps the epoch alive, and Lookup and placement pass it over. A
// standby serves the stream with an epoch of its own, having come too
// late to join the others' (Agreement.Standby): a route takes it only
// when no origin with the primary's epoch is left.
const (
	RolePrimary Role = "primary"
	RoleBackup  Role = "backup"
	RoleStandby Role = "standby"
)

// Load is what an origin reports of its work; placement weighs it (see
// Score).
type Load struct {
	// Streams is the number of streams it ingests.
	Streams int `json:"streams"`
	// IngestBPS is the bit rate of all its ingest connections together.
	IngestBPS float64 `json:"ingest_bps"`
	// TranscodeCPU is the CPU its transcoders use, in cores (CPU seconds
	// per second).
	TranscodeCPU float64 `json:"transcode_cpu"`
}

// Origin is an origin as the directory knows it: the value of
// {prefix}origins/{id}. Serving and Primaries are counted by a View
// from the stream keys and are not stored.
type Origin struct {
	ID   string `json:"id"`
	Zone string `json:"zone"`
	// PublicURL is the HTTP base URL of its origin server.
	PublicURL string `json:"public_url"`
	// RTMPURL is the base URL publishers are sent to.
	RTMPURL string `json:"rtmp_url"`
	Load    Load   `json:"load"`
	// Updated is when the origin last changed the record.
	Updated time.Time `json:"updated"`

	// Serving is the number of streams the directory lists on it with a
	// role; Primaries, those where it is the primary.
	Serving   int `json:"-"`
	Primaries int `json:"-"`
}

// StreamState is what an origin publishes of one stream it serves: the
// value of {prefix}streams/{name}/{origin id}.
type StreamState struct {
	Epoch string `json:"epoch"`
	Role  Role   `json:"role"`
	// NewestSegment is the number of the newest segment; it is written
	// at most every Registration's SegmentInterval.
	NewestSegment uint64 `json:"newest_segment"`
	// Fingerprint identifies the setup the epoch was made for (the
	// renditions and codecs): origins agree on an epoch only when it is
	// the same (see AgreeEpoch). A stream without one takes no part in
	// agreements: no epoch record is kept for it, and no origin can
	// join it.
	Fingerprint string `json:"fingerprint"`
	// Updated is when the origin wrote the record; Registration sets it.
	Updated time.Time `json:"updated"`
}

// EpochRecord is the agreement on a stream's epoch: the value of
// {prefix}epochs/{name}.
type EpochRecord struct {
	Epoch       string    `json:"epoch"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	// Holder is the origin under whose lease the record is now.
	Holder string `json:"holder"`
}

// keyKind says what a key under the prefix is.
type keyKind int

const (
	keyOther keyKind = iota
	keyOrigin
	keyStream
	keyEpoch
)

// schema spells and parses the keys under one prefix:
//
//	{prefix}origins/{id}               Origin
//	{prefix}streams/{name}/{origin id} StreamState
//	{prefix}epochs/{name}              EpochRecord
type schema struct{ prefix string }

func (s schema) originKey(id string) string { return s.prefix + "origins/" + id }
func (s schema) streamKey(name, id string) string {
	return s.prefix + "streams/" + name + "/" + id
}
func (s schema) streamPrefix(name string) string { return s.prefix + "streams/" + name + "/" }
func (s schema) epochKey(name string) string     { return s.prefix + "epochs/" + name }
func (s schema) epochPrefix() string             { return s.prefix + "epochs/" }

// parse says what key is, with the stream name and the origin ID it
// names; a key of no known shape, or with a name or ID that is not
// valid, is keyOther.
func (s schema) parse(key string) (kind keyKind, name, id string) {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return keyOther, "", ""
	}
	switch {
	case strings.HasPrefix(rest, "origins/"):
		id = rest[len("origins/"):]
		if ValidID(id) {
			return keyOrigin, "", id
		}
	case strings.HasPrefix(rest, "streams/"):
		name, id, ok = strings.Cut(rest[len("streams/"):], "/")
		if ok && layout.ValidStream(name) && ValidID(id) {
			return keyStream, name, id
		}
	case strings.HasPrefix(rest, "epochs/"):
		name = rest[len("epochs/"):]
		if layout.ValidStream(name) {
			return keyEpoch, name, ""
		}
	}
	return keyOther, "", ""
}

// ValidID reports whether id can name an origin: [A-Za-z0-9_.-]{1,64}.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkPrefix returns the prefix a Config's Prefix means.
func checkPrefix(p string) (string, error) {
	if p == "" {
		return DefaultPrefix, nil
	}
	if !strings.HasSuffix(p, "/") {
		return "", fmt.Errorf("prefix %q: must end with /", p)
	}
	return p, nil
}

// decode unmarshals a record's value.
func decode[T any](value []byte) (T, error) {
	var v T
	if err := json.Unmarshal(value, &v); err != nil {
		return v, fmt.Errorf("decode record: %w", err)
	}
	return v, nil
}

// encode marshals a record; the records have no values that fail.
func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("directory: encode %T: %v", v, err)) // unreachable: plain fields only
	}
	return string(b)
}

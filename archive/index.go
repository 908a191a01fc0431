// Package archive keeps what a live stream published: every init and
// media segment of every rendition, written to a store (a local
// directory or an S3 bucket) as the stream runs, with an index that
// grows with it, so that DVR, VOD and clips can be served once the
// origin's sliding window has moved on.
//
// A Writer takes segments from the origin without ever blocking it: a
// bounded queue, drained by a few workers that retry a failing store
// with backoff and drop the oldest segments when the queue is full. A
// Reader lists streams and epochs and loads an epoch's index and
// objects. A Sweeper deletes epochs older than the retention, except
// those that a Clip pins.
//
// # Layout of the store
//
//	streams/{stream}/{epoch}/epoch.json              EpochMeta, rewritten whole
//	streams/{stream}/{epoch}/index.jsonl             index, appended (stores that can append)
//	streams/{stream}/{epoch}/segments.pack           media segments, appended (stores that can append)
//	streams/{stream}/{epoch}/index/{chunk}.jsonl     index, in chunks (stores that cannot: S3)
//	streams/{stream}/{epoch}/{rendition}/{n}.m4s     CMAF media segment n (stores that cannot append)
//	streams/{stream}/{epoch}/{rendition}/init.mp4    CMAF init segment
//	clips/{id}.json                                  Clip, pinning its epoch
//
// An encrypted epoch's record names the ID of each key period's key
// (Encryption), never a key.
//
// Stream, epoch and rendition names are those of the live URL layout
// (internal/layout), so an archived object has the name it had live
// (Entry.Name). {chunk} is eight decimal digits.
//
// On a store that can append (a local disk), an epoch's media segments
// of every rendition go one after another into its pack, each at the
// offset its index entry gives: a segment then costs a write at the end
// of an open file and a sync, where a file of its own cost creating an
// inode, a rename and a sync of its directory (most of the archive's CPU
// time on ext4). Archives written before packs, one file per segment,
// read the same (entries without offset).
//
// # The index
//
// An index is JSON lines, one Entry per line, in the order objects were
// written (not necessarily by number: writes run in parallel). Each line
// is written only after the object it names is durable (the pack synced
// up to its end), so the index never names a missing object, and bytes
// a crash left at the end of a pack are named by no entry. A crash can leave a torn last line; readers skip lines
// that do not parse, and an index appended to again starts on a new
// line. A retried append can repeat a line; readers keep the first.
package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golivestream/live/internal/layout"
)

// ErrInvalid is returned (wrapped) for names, entries and records that
// are not well formed.
var ErrInvalid = errors.New("invalid archive record")

// Kind is what an index entry names.
type Kind string

// The kinds of index entry.
const (
	KindInit    Kind = "init"    // a rendition's CMAF init segment
	KindSegment Kind = "segment" // a CMAF media segment
)

// WallFormat is how wall-clock times are written: RFC 3339 in UTC with
// milliseconds.
const WallFormat = "2006-01-02T15:04:05.000Z07:00"

// Entry is one line of an epoch's index.
type Entry struct {
	// Rendition is the rendition's name ("v0", "a0").
	Rendition string
	// Kind is KindInit or KindSegment.
	Kind Kind
	// Number is a segment's number (0 for an init segment).
	Number uint64
	// Start and Duration are a segment's media time, in Timescale ticks
	// (0 for an init segment); Start is its tfdt.
	Start, Duration int64
	// Timescale is the rendition's ticks per second (0 for an init segment).
	Timescale uint32
	// Wall is the wall-clock time the origin gave the object (when the
	// segment was complete), to the millisecond.
	Wall time.Time
	// Size is the object's size in bytes.
	Size int64
	// Packed reports a segment stored in its epoch's pack, at Offset,
	// rather than as an object of its own.
	Packed bool
	Offset int64
}

// Name is the object's name relative to its epoch's prefix, as its live
// URL ends: "{rendition}/init.mp4" or "{rendition}/{n}.m4s". It
// identifies the entry.
func (e Entry) Name() string {
	if e.Kind == KindInit {
		return e.Rendition + "/init.mp4"
	}
	return e.Rendition + "/" + strconv.FormatUint(e.Number, 10) + ".m4s"
}

// Key is the key, relative to its epoch's prefix, of the object holding
// e's bytes: the pack for a packed segment, else Name.
func (e Entry) Key() string {
	if e.Packed {
		return packName
	}
	return e.Name()
}

// entryJSON is the JSON of an Entry.
type entryJSON struct {
	Rendition string `json:"rendition"`
	Kind      Kind   `json:"kind"`
	Number    uint64 `json:"number"`
	Start     int64  `json:"start"`
	Duration  int64  `json:"duration"`
	Timescale uint32 `json:"timescale"`
	Wall      string `json:"wall"`
	Size      int64  `json:"size"`
	Key       string `json:"key"`
	Offset    *int64 `json:"offset,omitempty"` // packed segments
}

// AppendLine appends e as one index line, newline included.
func (e Entry) AppendLine(dst []byte) []byte {
	j := entryJSON{
		Rendition: e.Rendition, Kind: e.Kind, Number: e.Number,
		Start: e.Start, Duration: e.Duration, Timescale: e.Timescale,
		Wall: e.Wall.UTC().Format(WallFormat), Size: e.Size, Key: e.Key(),
	}
	if e.Packed {
		j.Offset = &e.Offset
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic(err) // unreachable: strings and numbers only
	}
	return append(append(dst, b...), '\n')
}

// ParseEntry parses one index line (without its newline). It refuses,
// with ErrInvalid, a line that is not one whole entry: bad JSON (a torn
// line), a rendition that is no rendition name, an unknown kind, a
// negative size or duration, a segment without timescale, or a key
// other than the one the entry's fields give (so an index cannot point
// a reader outside its epoch), or an offset that is negative or not of
// a segment.
func ParseEntry(line []byte) (Entry, error) {
	var j entryJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	wall, err := time.Parse(time.RFC3339Nano, j.Wall)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: wall: %w", ErrInvalid, err)
	}
	e := Entry{
		Rendition: j.Rendition, Kind: j.Kind, Number: j.Number,
		Start: j.Start, Duration: j.Duration, Timescale: j.Timescale,
		Wall: wall.UTC(), Size: j.Size,
	}
	if j.Offset != nil {
		e.Packed, e.Offset = true, *j.Offset
	}
	switch {
	case e.Packed && (e.Kind != KindSegment || e.Offset < 0):
		return Entry{}, fmt.Errorf("%w: offset %d of a %s entry", ErrInvalid, e.Offset, e.Kind)
	case !layout.ValidRendition(e.Rendition):
		return Entry{}, fmt.Errorf("%w: rendition %q", ErrInvalid, e.Rendition)
	case e.Kind != KindInit && e.Kind != KindSegment:
		return Entry{}, fmt.Errorf("%w: kind %q", ErrInvalid, e.Kind)
	case e.Size < 0 || e.Duration < 0:
		return Entry{}, fmt.Errorf("%w: negative size or duration", ErrInvalid)
	case e.Kind == KindSegment && e.Timescale == 0:
		return Entry{}, fmt.Errorf("%w: segment without timescale", ErrInvalid)
	case e.Kind == KindInit && (e.Number != 0 || e.Start != 0 || e.Duration != 0 || e.Timescale != 0):
		return Entry{}, fmt.Errorf("%w: init entry with media time", ErrInvalid)
	case j.Key != e.Key():
		return Entry{}, fmt.Errorf("%w: key %q, want %q", ErrInvalid, j.Key, e.Key())
	}
	return e, nil
}

// Rendition describes one rendition of an epoch, as the caller gave it.
type Rendition struct {
	// ID is the rendition's name ("v0", "a0").
	ID string `json:"id"`
	// Codec is the RFC 6381 codec string ("avc1.64001f", "mp4a.40.2").
	Codec string `json:"codec,omitempty"`
	// Bandwidth is the peak or nominal bit rate, in bits per second.
	Bandwidth int `json:"bandwidth,omitempty"`
	// Width and Height are the picture size (video).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// FrameRate is the frame rate (video).
	FrameRate float64 `json:"frameRate,omitempty"`
	// SampleRate and Channels describe audio.
	SampleRate int `json:"sampleRate,omitempty"`
	Channels   int `json:"channels,omitempty"`
	// Timescale is the ticks per second of the rendition's media time.
	Timescale uint32 `json:"timescale,omitempty"`
}

// EpochMeta is an epoch's metadata record, epoch.json.
type EpochMeta struct {
	// Stream and Epoch name the epoch.
	Stream, Epoch string
	// Start is when the epoch began.
	Start time.Time
	// Renditions are those whose init segment was written, by ID.
	Renditions []Rendition
	// Ended reports that the stream ended this epoch; End is when.
	Ended bool
	End   time.Time
	// Deleting reports that the Sweeper is deleting the epoch: it is
	// past its retention and no clip pinned it when last checked.
	Deleting bool
	// Encryption says how an encrypted epoch's segments are keyed
	// (encryption.go); nil for a clear one, and in records written
	// before encrypted epochs were recorded.
	Encryption *Encryption
}

// metaJSON is the JSON of an EpochMeta.
type metaJSON struct {
	Stream     string      `json:"stream"`
	Epoch      string      `json:"epoch"`
	Start      string      `json:"start"`
	Renditions []Rendition `json:"renditions"`
	Ended      bool        `json:"ended"`
	End        string      `json:"end,omitempty"`
	Deleting   bool        `json:"deleting,omitempty"`
	Encryption *Encryption `json:"encryption,omitempty"`
}

// MarshalJSON implements json.Marshaler with times in WallFormat.
func (m EpochMeta) MarshalJSON() ([]byte, error) {
	j := metaJSON{
		Stream: m.Stream, Epoch: m.Epoch, Start: m.Start.UTC().Format(WallFormat),
		Renditions: m.Renditions, Ended: m.Ended, Deleting: m.Deleting, Encryption: m.Encryption,
	}
	if j.Renditions == nil {
		j.Renditions = []Rendition{}
	}
	if m.Ended {
		j.End = m.End.UTC().Format(WallFormat)
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler, checking the names.
func (m *EpochMeta) UnmarshalJSON(b []byte) error {
	var j metaJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if !layout.ValidStream(j.Stream) || !layout.ValidEpoch(j.Epoch) {
		return fmt.Errorf("%w: epoch %q of stream %q", ErrInvalid, j.Epoch, j.Stream)
	}
	start, err := time.Parse(time.RFC3339Nano, j.Start)
	if err != nil {
		return fmt.Errorf("%w: start: %w", ErrInvalid, err)
	}
	out := EpochMeta{Stream: j.Stream, Epoch: j.Epoch, Start: start.UTC(), Renditions: j.Renditions, Ended: j.Ended, Deleting: j.Deleting, Encryption: j.Encryption}
	if j.Ended {
		end, err := time.Parse(time.RFC3339Nano, j.End)
		if err != nil {
			return fmt.Errorf("%w: end: %w", ErrInvalid, err)
		}
		out.End = end.UTC()
	}
	*m = out
	return nil
}

// Keys of the store's layout.
const (
	streamsPrefix = "streams/"
	clipsPrefix   = "clips/"
	metaName      = "epoch.json"
	indexName     = "index.jsonl"
	packName      = "segments.pack"
	chunksDir     = "index/"
)

// EpochPrefix is the key prefix of an epoch's objects.
func EpochPrefix(stream, epoch string) string {
	return streamsPrefix + stream + "/" + epoch + "/"
}

// chunkKey is the key of index chunk n below an epoch's prefix.
func chunkKey(prefix string, n int) string {
	return fmt.Sprintf("%s%s%08d.jsonl", prefix, chunksDir, n)
}

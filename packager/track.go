// Package packager turns the access units of one elementary stream into
// CMAF (fragmented MP4) media: one init segment and a sequence of media
// segments, each made of CMAF chunks (moof+mdat pairs) so that the same files
// can be described both by an HLS playlist (including LL-HLS parts) and by a
// chunked MPEG-DASH manifest.
//
// Video and audio are separate tracks: every Track has its own init segment
// with a single trak (track_ID 1). The package is pure conversion code: it
// starts no goroutine, does no I/O and hands results out through synchronous
// callbacks.
//
// Media time is int64 ticks of a per-track timescale; Ticks and Duration are
// the only conversions between time.Duration and ticks.
package packager

import (
	"errors"
	"fmt"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// VideoTimescale is the timescale of video tracks (90000).
const VideoTimescale = 90000

const (
	// defaultSegmentDuration is used when Config.SegmentDuration is zero.
	defaultSegmentDuration = time.Second
	// defaultChunkDuration is used when Config.ChunkDuration is zero.
	defaultChunkDuration = 250 * time.Millisecond
	// aacFrameTicks is the duration of one AAC frame in ticks of its sample rate.
	aacFrameTicks = 1024
	// audioResync is how far an incoming audio timestamp may stray from the
	// expected one before the track follows it.
	audioResync = 100 * time.Millisecond
	// defaultVideoSampleDuration is given to the last video sample of a
	// stream when no other duration is known (1/30 s).
	defaultVideoSampleDuration = time.Second / 30
	// maxChunkPayload bounds the mdat payload of one chunk: a chunk is closed
	// early rather than exceed it, and larger access units are refused, which
	// keeps box sizes within 32 bits.
	maxChunkPayload = 1 << 30
)

// ErrUnsupportedCodec is returned (wrapped, naming the type) by New when
// Config.Codec is not one of the supported codecs.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// ErrClosed is returned by WriteVideo and WriteAudio after Flush.
var ErrClosed = errors.New("track flushed")

// ErrWrongMedia is returned by WriteVideo on an audio track and by WriteAudio
// on a video track.
var ErrWrongMedia = errors.New("wrong media type for track")

// Config configures a Track.
type Config struct {
	// Codec describes the track; one of *codecs.H264, *codecs.H265,
	// *codecs.MPEG4Audio from github.com/bluenviron/gohlslib/v2/pkg/codecs.
	// Anything else: New returns ErrUnsupportedCodec (wrapped, naming the type).
	Codec codecs.Codec
	// SegmentDuration is the target segment duration. Zero means 1 s.
	// Segments are cut on multiples of it on the stream timeline.
	SegmentDuration time.Duration
	// ChunkDuration is the target duration of one CMAF chunk (moof+mdat).
	// Zero means 250 ms.
	ChunkDuration time.Duration
	// FirstNumber is the number given to the first segment. Zero means 0.
	FirstNumber uint64
	// OnSegment is called synchronously from Write*/Flush each time a
	// segment is complete. Required (New errors if nil). It must not call
	// methods of the Track.
	OnSegment func(*Segment)
	// OnChunk, when not nil, is called synchronously for every chunk as soon
	// as it is complete (before the OnSegment of its segment). Nil means
	// chunks are only seen as part of their segment. It must not call methods
	// of the Track.
	OnChunk func(*Chunk)
}

// Segment is one complete media segment. All fields are immutable once handed
// out: readers share Data without copying.
type Segment struct {
	// Number is FirstNumber, FirstNumber+1, ... in output order.
	Number uint64
	// Start is the decode time of the first sample in Timescale ticks (equal
	// to the tfdt of its first chunk).
	Start int64
	// Duration is the sum of the sample durations, in ticks.
	Duration int64
	// Timescale is the number of ticks per second.
	Timescale uint32
	// Data is the whole segment: all chunks concatenated (moof mdat moof mdat ...).
	Data []byte
	// Chunks tells where each chunk lies in Data.
	Chunks []ChunkInfo
	// Samples is the number of samples (frames) in the segment.
	Samples int
	// Independent reports whether the segment starts with a sync sample. It
	// is always true: audio frames are all sync samples and video segments
	// start at a keyframe (frames before the first keyframe are dropped).
	Independent bool
}

// ChunkInfo locates one chunk (moof+mdat) inside Segment.Data.
type ChunkInfo struct {
	// Offset and Size are the byte range of the chunk in Segment.Data.
	Offset, Size int
	// Start is the decode time of the first sample (its tfdt), Duration the
	// sum of its sample durations, both in ticks.
	Start, Duration int64
	// Independent reports whether the chunk starts with a sync sample.
	Independent bool
}

// Chunk is one moof+mdat handed to Config.OnChunk. Data is immutable and is
// the same bytes that later appear in Segment.Data.
type Chunk struct {
	// SegmentNumber is the Number of the segment the chunk belongs to.
	SegmentNumber uint64
	// Index is the position of the chunk in its segment, from 0.
	Index int
	// Start is the decode time of the first sample (its tfdt), Duration the
	// sum of its sample durations, both in ticks of the track timescale.
	Start, Duration int64
	// Data is the moof+mdat pair.
	Data []byte
	// Segment is the segment so far: its chunks up to this one included,
	// the start of what Segment.Data will be. Immutable too: a reader may
	// keep it without copying.
	Segment []byte
	// Independent reports whether the chunk starts with a sync sample.
	Independent bool
}

// Info describes a track for manifests.
type Info struct {
	// Codec is the RFC 6381 codec string, e.g. "avc1.64001f",
	// "hvc1.1.6.L93.b0", "mp4a.40.2".
	Codec string
	// Video reports whether the track is a video track.
	Video bool
	// Width and Height are the picture size from the SPS (video only).
	Width, Height int
	// SampleRate and Channels come from the AudioSpecificConfig (audio only).
	// For HE-AAC, SampleRate is the output (SBR) rate, twice the Timescale.
	SampleRate, Channels int
	// Timescale is the number of ticks per second of the track.
	Timescale uint32
}

// trackKind is the codec family of a Track.
type trackKind int

const (
	kindH264 trackKind = iota
	kindH265
	kindAAC
)

// sample is one entry of the trun of the chunk in progress.
type sample struct {
	dur, size, flags uint32
	cto              int32
}

// Track packages one elementary stream. It is not safe for concurrent use.
type Track struct {
	onSegment func(*Segment)
	onChunk   func(*Chunk)
	kind      trackKind
	info      Info
	init      []byte

	segTicks    int64 // mediatime.Ticks(SegmentDuration)
	tolTicks    int64 // segment cut tolerance, segTicks/10
	chunkTicks  int64 // mediatime.Ticks(ChunkDuration)
	resyncTicks int64 // mediatime.Ticks(audioResync)
	trunFlags   uint32
	sampleBytes int // bytes per trun sample entry

	closed       bool
	started      bool   // a first sample was accepted
	nextBoundary int64  // the segment in progress ends at or after it
	seqNum       uint32 // mfhd sequence number of the next chunk
	nextNumber   uint64 // Number of the segment in progress

	// Video: the last sample is written to the chunk in progress but its
	// duration is known only when the next sample arrives.
	hasPend bool
	pendDTS int64
	lastDur int64 // duration of the last completed sample, 0 if none

	// Audio: expected decode time of the next frame.
	nextAudio int64

	// Chunk in progress; samples and mdat are reused from chunk to chunk.
	chunkOpen        bool
	chunkStart       int64
	chunkDur         int64
	chunkIndependent bool
	samples          []sample
	mdat             []byte

	// Segment in progress.
	segOpen       bool
	segStart      int64
	segDur        int64
	segSamples    int
	segBuf        []byte
	segChunks     []ChunkInfo
	lastSegSize   int // size of the previous segment, to size the next buffer
	lastSegChunks int // chunk count of the previous segment
}

// New validates a copy of cfg, builds the init segment and returns a Track.
func New(cfg Config) (*Track, error) {
	if cfg.OnSegment == nil {
		return nil, errors.New("new track: OnSegment is required")
	}
	if cfg.SegmentDuration < 0 {
		return nil, fmt.Errorf("new track: negative segment duration %v", cfg.SegmentDuration)
	}
	if cfg.ChunkDuration < 0 {
		return nil, fmt.Errorf("new track: negative chunk duration %v", cfg.ChunkDuration)
	}
	if cfg.SegmentDuration == 0 {
		cfg.SegmentDuration = defaultSegmentDuration
	}
	if cfg.ChunkDuration == 0 {
		cfg.ChunkDuration = defaultChunkDuration
	}

	t := &Track{
		onSegment:  cfg.OnSegment,
		onChunk:    cfg.OnChunk,
		nextNumber: cfg.FirstNumber,
		seqNum:     1,
	}
	if err := t.setup(cfg.Codec); err != nil {
		return nil, fmt.Errorf("new track: %w", err)
	}

	ts := t.info.Timescale
	t.segTicks = mediatime.Ticks(cfg.SegmentDuration, ts)
	t.chunkTicks = mediatime.Ticks(cfg.ChunkDuration, ts)
	if t.segTicks < 1 || t.chunkTicks < 1 {
		return nil, fmt.Errorf("new track: segment duration %v and chunk duration %v must be at least one tick of timescale %d",
			cfg.SegmentDuration, cfg.ChunkDuration, ts)
	}
	t.tolTicks = t.segTicks / 10
	t.resyncTicks = mediatime.Ticks(audioResync, ts)
	return t, nil
}

// Info describes the track for manifests.
func (t *Track) Info() Info {
	return t.info
}

// Init returns the init segment (ftyp+moov), built by New. The bytes are
// shared and must not be modified.
func (t *Track) Init() []byte {
	return t.init
}

// Flush closes the segment in progress, as at the end of the stream. The last
// video sample gets the duration of the sample before it (1/30 s if it is the
// only one). After Flush, WriteVideo and WriteAudio return ErrClosed; further
// calls to Flush do nothing.
func (t *Track) Flush() {
	if t.closed {
		return
	}
	t.closed = true
	if t.hasPend {
		t.hasPend = false
		t.finishSample(t.fallbackDuration())
	}
	t.closeSegment()
}

// fallbackDuration is the duration of a video sample whose successor is
// unknown: the previous sample's duration, or 1/30 s.
func (t *Track) fallbackDuration() int64 {
	if t.lastDur > 0 {
		return t.lastDur
	}
	return mediatime.Ticks(defaultVideoSampleDuration, VideoTimescale)
}

// boundaryAfter returns the first multiple of the segment duration strictly
// greater than tm plus the cut tolerance. After a cut at tm this is the time
// at which the next segment should start.
func (t *Track) boundaryAfter(tm int64) int64 {
	x := tm + t.tolTicks
	q := x / t.segTicks
	if x%t.segTicks != 0 && x < 0 {
		q-- // floor division
	}
	return (q + 1) * t.segTicks
}

package ingest

import "errors"

// What one connection may make the RTMP library hold (issue #18 A: one
// client announcing 10 MiB messages on 61 chunk streams and sending most of
// each made the server hold 600 MB). gortmplib's reader keeps each chunk of
// a message in more than one chunk until the message is complete, for
// every chunk stream at once; after a message it keeps those chunks
// referenced until later messages of the stream overwrite them (see
// fragments). The guard counts both and refuses, at a message's first
// chunk header, before the library allocates its body, a message that
// would go over a bound.
const (
	// maxPendingMessage bounds a message before the client may publish:
	// connect, createStream, publish and the like take a few hundred
	// bytes (a long tcUrl, a few KB). The library decodes a command's
	// AMF0 into Go values, which can take 80 times its length.
	maxPendingMessage = 16 << 10
	// maxControlMessage bounds a message that is not audio or video once
	// the client publishes: metadata, captions, commands, protocol
	// control.
	maxControlMessage = 64 << 10
	// maxMediaMessage bounds an audio or video message: one frame. A 4K
	// keyframe at a high bitrate takes a few MB.
	maxMediaMessage = 8 << 20
	// maxHeldPending bounds what the library holds for a connection that
	// may not publish yet: a few full-size commands.
	maxHeldPending = 4 * maxPendingMessage
	// maxHeldPublishing bounds it for a publisher: a full-size frame, in
	// the place of the largest one before it, and the rest.
	maxHeldPublishing = maxMediaMessage + 1<<20
	// maxPartial bounds the messages begun and not finished at a time.
	// An encoder interleaves at most audio, video and data.
	maxPartial = 8
)

// errOverBudget is wrapped, with ErrProtocol, by the refusals of messages
// that would take the connection over what it may make the library hold,
// as opposed to those of one message out of bounds on its own.
var errOverBudget = errors.New("over the connection's memory budget")

// maxMessage returns the longest message of type typ the guard lets
// through, 0 for none.
func (g *chunkGuard) maxMessage(typ uint8) uint32 {
	media := typ == typeAudio || typ == typeVideo
	switch {
	case !g.published && media:
		return 0
	case !g.published:
		return maxPendingMessage
	case media:
		return maxMediaMessage
	}
	return maxControlMessage
}

// begin accounts for the message whose first chunk header cs has just
// taken, or refuses it.
func (g *chunkGuard) begin(cs *chunkStream) error {
	switch limit := g.maxMessage(cs.typ); {
	case limit == 0:
		return g.refuse("audio or video (message type %d) before publish", cs.typ)
	case cs.length > limit:
		return g.refuse("message type %d of %d bytes, above the %d allowed", cs.typ, cs.length, limit)
	}
	cs.chunks, cs.largest = 0, 0
	overwritten := uint32(0) // the library's kept chunks this message replaces
	if cs.length > g.chunkSize {
		if g.partial == maxPartial {
			return g.refuse("%w: more than %d messages unfinished at once", errOverBudget, maxPartial)
		}
		g.partial++
		cs.multi = true
		overwritten = (cs.length + g.chunkSize - 1) / g.chunkSize
	}
	// By its end the library holds the message, and of the chunks it
	// kept those the message does not overwrite: all for a message in
	// one chunk, which it does not keep.
	return g.hold(cs, uint64(cs.length)+cs.kept.bytes(overwritten))
}

// end accounts for the message cs has just completed.
func (g *chunkGuard) end(cs *chunkStream) error {
	if cs.multi {
		cs.multi = false
		g.partial--
		cs.kept.overwrite(cs.chunks, cs.largest)
	}
	return g.hold(cs, cs.kept.bytes(0))
}

// hold sets what the library holds for cs to n bytes, or refuses if the
// connection's total would go over its bound.
func (g *chunkGuard) hold(cs *chunkStream, n uint64) error {
	g.held = g.held - cs.held + n
	cs.held = n
	limit := uint64(maxHeldPending)
	if g.published {
		limit = maxHeldPublishing
	}
	if g.held > limit {
		return g.refuse("%w: %d bytes held for unfinished and past messages, above the %d allowed", errOverBudget, g.held, limit)
	}
	return nil
}

// fragments bounds the bytes gortmplib keeps of a chunk stream's past
// messages. The reader appends each chunk of a message in more than one
// chunk, as a slice of its own, to a slice it keeps per chunk stream and
// reuses from its start for the next such message (rawmessage's
// curBodyFragments, reset with [:0]): the chunks of the stream's longest
// message stay referenced, each entry until a later message has as many
// chunks. The entries are counted in runs of entries of at most the same
// length; beyond maxRuns runs, the last two are merged into one of the
// larger length, so the count stays an upper bound.
type fragments struct {
	runs [maxRuns]fragmentRun
	n    uint8
}

// fragmentRun is entries [end of the run before, end) of at most size
// bytes each.
type fragmentRun struct{ end, size uint32 }

// maxRuns is enough for a stream whose chunk size changed once or twice,
// as encoders' does (at most once).
const maxRuns = 4

// bytes returns what the entries from index from on hold at most.
func (f *fragments) bytes(from uint32) uint64 {
	var sum uint64
	start := uint32(0)
	for _, r := range f.runs[:f.n] {
		if r.end > from {
			sum += uint64(r.end-max(start, from)) * uint64(r.size)
		}
		start = r.end
	}
	return sum
}

// overwrite records a message of n chunks of at most size bytes each.
func (f *fragments) overwrite(n, size uint32) {
	out := fragments{runs: [maxRuns]fragmentRun{{n, size}}, n: 1}
	for _, r := range f.runs[:f.n] {
		if r.end <= n {
			continue
		}
		last := &out.runs[out.n-1]
		switch {
		case r.size == last.size:
			last.end = r.end
		case out.n < maxRuns:
			out.runs[out.n] = r
			out.n++
		default:
			last.end, last.size = r.end, max(last.size, r.size)
		}
	}
	*f = out
}

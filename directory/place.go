package directory

import (
	"cmp"
	"slices"
)

// The load of a typical stream, by which Score counts ingest and
// transcoding in streams.
const (
	// StreamBPS is a typical stream's ingest bit rate: 5 Mbit/s.
	StreamBPS = 5e6
	// StreamCPU is a typical ABR ladder's transcoding: one core.
	StreamCPU = 1.0
)

// Score is an origin's load in typical streams: each stream it ingests
// counts 1, its ingest bit rate 1 more per StreamBPS, and its
// transcoding 1 more per StreamCPU core. A typical transcoded stream
// thus counts 3, a passthrough one 2, a 1 Mbit/s passthrough one 1.2.
// The streams are the more of those the origin reports and those the
// directory lists on it (its reports lag behind new streams).
func Score(o Origin) float64 {
	streams := max(o.Load.Streams, o.Serving)
	return float64(streams) + o.Load.IngestBPS/StreamBPS + o.Load.TranscodeCPU/StreamCPU
}

// Place chooses the origins a new stream is published to: the primary
// is the origin with the least Score (then the fewest primaries, then
// the least ID), the backup the least loaded of the others in another
// zone than the primary's, or in its zone when all are in one. Origins
// without an RTMP URL take no streams. Backup is zero when only one
// origin can take the stream; err is ErrNoOrigins when none can.
func Place(origins []Origin) (primary, backup Origin, err error) {
	type scored struct {
		o     Origin
		score float64
	}
	cands := make([]scored, 0, len(origins))
	for _, o := range origins {
		if o.RTMPURL != "" {
			cands = append(cands, scored{o, Score(o)})
		}
	}
	if len(cands) == 0 {
		return Origin{}, Origin{}, ErrNoOrigins
	}
	slices.SortFunc(cands, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.o.Primaries, b.o.Primaries), cmp.Compare(a.o.ID, b.o.ID))
	})
	primary = cands[0].o
	for _, c := range cands[1:] {
		if c.o.Zone != primary.Zone {
			return primary, c.o, nil
		}
	}
	if len(cands) > 1 {
		backup = cands[1].o // all in the primary's zone
	}
	return primary, backup, nil
}

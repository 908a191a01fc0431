package origin

// Archiving a stream instance as it runs (issue #24): the instance
// begins an epoch in the archive (Config.Archive) when it is made, each
// rendition queues its init segment with its first segment, each
// segment is queued as it is listed, and the epoch ends with the
// stream. Queueing never blocks, under the stream's mu. The same hook
// keeps the DVR window (dvr.go). The epoch of an encrypted instance
// records the ID of each of its keys (streamKeys.archiveKeys), so that
// its VOD, clips and DVR window say which key each segment needs.

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/packager"
)

// streamArchive is what one stream instance keeps of its archiving and
// its DVR window. A nil *streamArchive (neither archive nor DVR) does
// nothing.
type streamArchive struct {
	// ep is the epoch's handle; nil without Config.Archive.
	ep  *archive.Epoch
	log *slog.Logger
	// dvr is Config.DVR; zero keeps no DVR window.
	dvr time.Duration

	// inited holds the renditions whose init segment was queued; guarded
	// by the stream's mu.
	inited map[string]bool
	// view is the DVR window as last published, replaced with the
	// stream's mu held (dvr.go); nil without one.
	view atomic.Pointer[dvrView]
}

// beginArchive starts archiving the new instance in, and its DVR
// window. It never blocks. It returns nil when the origin keeps neither.
func beginArchive(env *streamEnv, in *instance) *streamArchive {
	if env == nil || env.cfg.Archive == nil && env.cfg.DVR <= 0 {
		return nil // tests make streams without an environment
	}
	cfg := env.cfg
	a := &streamArchive{log: env.log.With("stream", in.name, "epoch", in.epoch), dvr: cfg.DVR, inited: map[string]bool{}}
	if cfg.Archive != nil {
		ep, err := cfg.Archive.Begin(in.name, in.epoch, in.ast)
		if err != nil {
			// Names the layout checked already: only a bug gets here.
			a.log.Error("archive: epoch not begun", "error", err)
		}
		a.ep = ep
		if ep != nil && in.keys != nil {
			in.keys.archiveKeys(ep)
		}
	}
	if a.dvr > 0 {
		a.view.Store(&dvrView{in: in, log: a.log, depth: cfg.DVR, segment: cfg.SegmentDuration})
	}
	return a
}

// addedLocked archives segment seg of rendition rid of next, the
// snapshot about to be published that lists it, and adds it to the DVR
// window; disc marks a discontinuity before it. It is addSegment's hook,
// called with the stream's mu held, before next is published.
func (a *streamArchive) addedLocked(next *snapshot, rid string, seg *packager.Segment, disc bool, now time.Time) {
	r := next.rendition(rid)
	if a == nil || r == nil {
		return
	}
	first := !a.inited[rid]
	a.inited[rid] = true
	var fps float64
	if first && r.info.Video {
		fps = measureEntries([]*entry{{seg: seg}}, r.info).fps
	}
	if a.ep != nil {
		if first && r.init != nil {
			ri := archive.Rendition{
				ID: rid, Codec: r.info.Codec, Timescale: r.info.Timescale,
				Bandwidth: measureEntries([]*entry{{seg: seg}}, r.info).peak,
			}
			if r.info.Video {
				ri.Width, ri.Height, ri.FrameRate = r.info.Width, r.info.Height, fps
			} else {
				ri.SampleRate, ri.Channels = r.info.SampleRate, r.info.Channels
			}
			if err := a.ep.Init(archive.Init{Rendition: ri, Wall: now, Data: r.init.body}); err != nil {
				a.log.Error("archive: init segment not queued", "rendition", rid, "error", err)
			}
		}
		err := a.ep.Segment(archive.Segment{
			Rendition: rid, Number: seg.Number, Start: seg.Start, Duration: seg.Duration,
			Timescale: seg.Timescale, Wall: now, Data: seg.Data,
		})
		if err != nil {
			a.log.Error("archive: segment not queued", "rendition", rid, "segment", seg.Number, "error", err)
		}
	}
	if a.dvr > 0 {
		a.view.Store(a.view.Load().added(r, seg, disc, fps, next.ended))
	}
}

// endLocked records the end of the epoch, at now, and ends the DVR
// window with next, the snapshot about to be published. It is
// endLocked's hook, called with the stream's mu held.
func (a *streamArchive) endLocked(now time.Time) {
	if a == nil {
		return
	}
	if a.ep != nil {
		a.ep.End(now)
	}
	if a.dvr > 0 {
		a.view.Store(a.view.Load().end())
	}
}

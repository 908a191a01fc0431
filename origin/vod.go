package origin

// VODs and clips (issue #24): an archived epoch is served as video on
// demand at /vod/{stream}/{epoch}/ (index.m3u8, manifest.mpd, and
// {rendition}/index.m3u8), a clip cut from one at
// /vod/{stream}/clips/{clip}/. Their manifests are built from the
// archive's record and index (vod_present.go); the segments they list
// are the epoch's own, at their URLs under /live/, reached by relative
// URIs so that a token in the path (/t/{token}/vod/...) goes along.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/internal/promreg"
)

const (
	// vodReload is how long a loaded VOD that may still change is used
	// before it is loaded again: an epoch's last segments are written a
	// moment after it ends, a ladder's after that.
	vodReload = 2 * time.Second
	// vodSettle is how long after its end an epoch is taken to be
	// complete in the archive: its VOD is then kept, and cached by
	// everyone, for vodSettledAge.
	vodSettle = time.Minute
	// vodSettledAge is the max-age of a settled VOD's manifests: long,
	// though not immutable, as retention may delete the epoch.
	vodSettledAge = 10 * time.Minute
	// vodCacheSize bounds the VODs and clips kept loaded.
	vodCacheSize = 256
	// tailGaps is how close to a rendition's end a gap in its numbers
	// ends its VOD there: the workers of the archive write in parallel,
	// so a crash leaves holes among the last segments.
	tailGaps = 16
)

// errNoVOD is the error of a VOD or clip the archive does not hold.
var errNoVOD = errors.New("no such VOD")

// vodServer serves what the archive holds. It is safe for concurrent
// use.
type vodServer struct {
	store  store.Store
	reader *archive.Reader
	// kids finds the key periods of the KIDs of archived encrypted
	// epochs, for key delivery (vod_protect.go).
	kids *archivedKIDs

	reads        *prometheus.CounterVec
	readSeconds  prometheus.Histogram
	clipsCreated prometheus.Counter

	flight singleflight.Group
	mu     sync.Mutex
	// loaded holds the VODs and clips loaded, by vodKey or clipKey;
	// guarded by mu.
	loaded *simplelru.LRU[string, *vod]
}

// newVODServer checks the archive settings of s's config and returns
// the server of what the archive holds; nil without an ArchiveStore.
func newVODServer(s *Server) (*vodServer, error) {
	cfg := s.cfg
	switch {
	case cfg.DVR < 0:
		return nil, errors.New("negative DVR")
	case cfg.DVR > 0 && (cfg.Archive == nil || cfg.ArchiveStore == nil):
		return nil, errors.New("a DVR window needs Archive and ArchiveStore")
	case cfg.DVR > 0 && cfg.DVR <= cfg.Window:
		return nil, fmt.Errorf("DVR %v must be longer than Window %v", cfg.DVR, cfg.Window)
	case cfg.ArchiveStore == nil:
		return nil, nil
	}
	reader, err := archive.NewReader(archive.ReaderConfig{Store: cfg.ArchiveStore})
	if err != nil {
		return nil, err
	}
	loaded, _ := simplelru.NewLRU[string, *vod](vodCacheSize, nil)
	v := &vodServer{
		store:  cfg.ArchiveStore,
		reader: reader,
		kids:   newArchivedKIDs(reader),
		loaded: loaded,
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_origin_archive_reads_total",
			Help: "Init segments and segments read from the archive, no longer in memory, by result (hit, miss, error).",
		}, []string{"result"}),
		readSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "live_origin_archive_read_seconds",
			Help:    "Latency of the archive reads that found their object.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		clipsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_origin_clips_created_total",
			Help: "Clips created with POST /api/clips.",
		}),
	}
	if err := promreg.Register(cfg.Registerer, v.reads, v.readSeconds, v.clipsCreated); err != nil {
		return nil, err
	}
	return v, nil
}

// vod is a VOD or a clip as loaded, with its manifests, built when first
// asked for. It is never modified once loaded.
type vod struct {
	pres *presentation
	meta archive.EpochMeta
	clip *archive.Clip // nil for an epoch's VOD
	// settled reports that it will not change: the epoch ended vodSettle
	// ago or more.
	settled bool
	loaded  time.Time

	multivariant, mpd *lazyObject
	playlists         map[string]*lazyObject
}

// newVOD returns the VOD of pres, its manifests dated now.
func newVOD(pres *presentation, meta archive.EpochMeta, now time.Time) *vod {
	v := &vod{pres: pres, meta: meta, loaded: now, playlists: map[string]*lazyObject{}}
	v.settled = meta.Ended && now.Sub(meta.End) >= vodSettle
	v.multivariant = newLazy(func() *object { return newObject(presMultivariant(pres), typeM3U8, now, false) })
	v.mpd = newLazy(func() *object {
		b, err := presMPD(pres)
		if err != nil {
			return nil // only a bug gets here: our own types
		}
		return newObject(b, typeMPD, now, false)
	})
	for _, r := range pres.renditions {
		v.playlists[r.id] = newLazy(func() *object { return newObject(presMediaPlaylist(pres, r), typeM3U8, now, false) })
	}
	return v
}

// fresh reports whether v may still be used at now: a settled one is
// loaded again as often as caches keep its manifests (retention may have
// deleted it), one that may change every vodReload.
func (v *vod) fresh(now time.Time) bool {
	if v.settled {
		return now.Sub(v.loaded) < vodSettledAge
	}
	return now.Sub(v.loaded) < vodReload
}

// cacheControl is the Cache-Control of v's manifests.
func (v *vod) cacheControl() string {
	if v.settled {
		return "public, max-age=" + strconv.Itoa(int(vodSettledAge.Seconds()))
	}
	return "public, max-age=" + strconv.Itoa(int(vodReload.Seconds()))
}

// get returns the loaded object under key, loading it with load when it
// is missing or stale; concurrent loads of one key are one.
func (vs *vodServer) get(ctx context.Context, key string, load func(context.Context) (*vod, error)) (*vod, error) {
	now := time.Now()
	vs.mu.Lock()
	v, ok := vs.loaded.Get(key)
	vs.mu.Unlock()
	if ok && v.fresh(now) {
		return v, nil
	}
	res, err, _ := vs.flight.Do(key, func() (any, error) {
		// A load shared by every waiter: not ended by the first one
		// leaving, bounded on its own.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		v, err := load(lctx)
		if err != nil {
			return nil, err
		}
		vs.mu.Lock()
		vs.loaded.Add(key, v)
		vs.mu.Unlock()
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*vod), nil
}

// forget drops key from the loaded VODs and clips.
func (vs *vodServer) forget(key string) {
	vs.mu.Lock()
	vs.loaded.Remove(key)
	vs.mu.Unlock()
}

// epoch returns the VOD of an archived epoch; errNoVOD (wrapped) when
// the archive does not hold it, or it is being deleted.
func (vs *vodServer) epoch(ctx context.Context, stream, epoch string) (*vod, error) {
	return vs.get(ctx, "e/"+stream+"/"+epoch, func(ctx context.Context) (*vod, error) {
		meta, err := vs.reader.Meta(ctx, stream, epoch)
		if errors.Is(err, store.ErrNotFound) || err == nil && meta.Deleting {
			return nil, fmt.Errorf("%w: epoch %s of %s", errNoVOD, epoch, stream)
		}
		if err != nil {
			return nil, err
		}
		idx, err := vs.reader.Index(ctx, stream, epoch)
		if err != nil {
			return nil, err
		}
		live := "../../../live/" + stream + "/"
		files := live + epoch + "/"
		pres := &presentation{
			epoch: epoch,
			ast:   meta.Start,
			uris: presURIs{
				playlist: func(rid string) string { return rid + "/index.m3u8" },
				files:    func(rid string) string { return "../" + files + rid + "/" },
				mpdFiles: files,
				keys:     "../" + live + layout.KeysDir + "/",
			},
			segment: time.Second,
		}
		pres.renditions = vodRenditions(meta, idx)
		if meta.Encryption != nil {
			pres.keys = archivedKeys(meta.Encryption)
			pres.renditions = pres.keys.keyed(pres.renditions)
		}
		if len(pres.renditions) == 0 {
			return nil, fmt.Errorf("%w: epoch %s of %s has no segments", errNoVOD, epoch, stream)
		}
		return newVOD(pres, meta, time.Now()), nil
	})
}

// vodRenditions returns the renditions of an archived epoch whose init
// segment and some segments are in its index, video first, each by
// number (v0, v1, ..., a0). Segment gaps at a rendition's end (a crash)
// end it before them; a segment after a gap in numbers or media time is
// marked a discontinuity.
func vodRenditions(meta archive.EpochMeta, idx archive.Index) []*presRendition {
	segs := map[string][]presSegment{}
	inits := map[string]bool{}
	for _, e := range idx.Entries { // by rendition, then number
		if e.Kind == archive.KindInit {
			inits[e.Rendition] = true
			continue
		}
		prev := segs[e.Rendition]
		s := presSegment{number: e.Number, start: e.Start, duration: e.Duration, size: e.Size}
		if n := len(prev); n > 0 {
			s.disc = e.Number != prev[n-1].number+1 || e.Start != prev[n-1].end()
		}
		segs[e.Rendition] = append(prev, s)
	}
	var out []*presRendition
	for _, r := range meta.Renditions {
		ss := segs[r.ID]
		for i := max(1, len(ss)-tailGaps); i < len(ss); i++ {
			if ss[i].number != ss[i-1].number+1 {
				ss = ss[:i]
				break
			}
		}
		if !inits[r.ID] || len(ss) == 0 {
			continue
		}
		out = append(out, &presRendition{
			id: r.ID, codec: r.Codec, video: r.Width > 0 || strings.HasPrefix(r.ID, "v"),
			width: r.Width, height: r.Height, fps: r.FrameRate, sample: r.SampleRate, channels: r.Channels,
			timescale: r.Timescale, segs: ss,
		})
	}
	slices.SortFunc(out, func(a, b *presRendition) int { return compareRenditions(a.id, b.id) })
	return out
}

// compareRenditions orders rendition names video first, then by number:
// v0, v1, v2, ..., v10, a0.
func compareRenditions(a, b string) int {
	num := func(id string) int {
		n, _ := strconv.Atoi(strings.TrimLeft(id, "abcdefghijklmnopqrstuvwxyz"))
		return n
	}
	return cmp.Or(cmp.Compare(kindOf(b), kindOf(a)), cmp.Compare(num(a), num(b)), strings.Compare(a, b))
}

// clip returns the VOD of a clip of stream; errNoVOD (wrapped) when
// there is none, or its epoch is gone.
func (vs *vodServer) clip(ctx context.Context, stream, id string) (*vod, error) {
	return vs.get(ctx, "c/"+id, func(ctx context.Context) (*vod, error) {
		clips, err := archive.Clips(ctx, vs.store)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(clips, func(c archive.Clip) bool { return c.ID == id })
		if i < 0 || clips[i].Stream != stream {
			return nil, fmt.Errorf("%w: clip %s of %s", errNoVOD, id, stream)
		}
		c := clips[i]
		base, err := vs.epoch(ctx, c.Stream, c.Epoch)
		if err != nil {
			return nil, err
		}
		pres := cutClip(base.pres, c)
		if len(pres.renditions) == 0 {
			return nil, fmt.Errorf("%w: clip %s has no segments", errNoVOD, id)
		}
		v := newVOD(pres, base.meta, time.Now())
		v.clip = &c
		v.settled = base.settled || time.Since(c.Created) >= vodSettle
		return v, nil
	})
}

// cutClip returns the presentation of clip c of the epoch p: the
// segments c.From to c.To of the reference rendition (clipReference),
// and of the others the segments whose middle falls within their time.
func cutClip(p *presentation, c archive.Clip) *presentation {
	live := "../../../../live/" + c.Stream + "/"
	files := live + c.Epoch + "/"
	out := *p
	out.renditions = nil
	out.uris = presURIs{
		playlist: func(rid string) string { return rid + "/index.m3u8" },
		files:    func(rid string) string { return "../" + files + rid + "/" },
		mpdFiles: files,
		keys:     "../" + live + layout.KeysDir + "/",
	}
	ref := clipReference(p.renditions)
	if ref == nil {
		return &out
	}
	var from, to time.Duration
	found := false
	for _, s := range ref.segs {
		if s.number >= c.From && s.number <= c.To {
			if !found {
				from, found = mediatime.Duration(s.start, ref.timescale), true
			}
			to = mediatime.Duration(s.end(), ref.timescale)
		}
	}
	if !found {
		return &out
	}
	for _, r := range p.renditions {
		if len(c.Renditions) > 0 && !slices.Contains(c.Renditions, r.id) {
			continue
		}
		cr := *r
		cr.segs, cr.discSeq = nil, 0
		for _, s := range r.segs {
			mid := mediatime.Duration(s.start+s.duration/2, r.timescale)
			if mid >= from && mid < to {
				cr.segs = append(cr.segs, s)
			}
		}
		if len(cr.segs) > 0 {
			cr.segs[0].disc = false
			out.renditions = append(out.renditions, &cr)
		}
	}
	if out.keys != nil {
		out.renditions = out.keys.keyed(out.renditions)
	}
	return &out
}

// clipReference is the rendition whose segment numbers a clip's From and
// To are: the first video rendition (v0, the source), else the first.
func clipReference(rs []*presRendition) *presRendition {
	for _, r := range rs {
		if r.video {
			return r
		}
	}
	if len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// serveVOD answers the manifests of a VOD or a clip (their path checked
// by ServeHTTP).
func (s *Server) serveVOD(w http.ResponseWriter, r *http.Request) {
	o, _ := layout.Parse(r.URL.EscapedPath())
	if s.vod == nil {
		s.notFound(w, "vod", "no archive")
		return
	}
	var v *vod
	var err error
	if o.Clip != "" {
		v, err = s.vod.clip(r.Context(), o.Stream, o.Clip)
	} else {
		if st := s.instance(o.Stream, o.Epoch); st != nil && !st.snap.Load().ended {
			s.notFound(w, "vod", "the epoch is live: "+layout.Prefix+o.Stream+"/index.m3u8")
			return
		}
		v, err = s.vod.epoch(r.Context(), o.Stream, o.Epoch)
	}
	switch {
	case errors.Is(err, errNoVOD):
		s.notFound(w, "vod", "no such VOD")
		return
	case err != nil:
		if r.Context().Err() != nil {
			return
		}
		s.log.Warn("archive read failed", "path", r.URL.Path, "error", err)
		s.metrics.requests.WithLabelValues("vod", "503").Inc()
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "archive unavailable", http.StatusServiceUnavailable)
		return
	}
	var obj *object
	switch o.Kind {
	case layout.VODMultivariant:
		obj = v.multivariant.get()
	case layout.VODMPD:
		obj = v.mpd.get()
	case layout.VODMediaPlaylist:
		obj = v.playlists[o.Rendition].get()
	}
	if obj == nil {
		s.notFound(w, "vod", "no such rendition")
		return
	}
	w.Header().Set("Content-Type", obj.contentType)
	w.Header().Set("ETag", obj.etag)
	w.Header().Set("Cache-Control", v.cacheControl())
	s.metrics.requests.WithLabelValues("vod", "200").Inc()
	s.metrics.bytesServed.WithLabelValues("vod").Add(float64(len(obj.body)))
	http.ServeContent(w, r, "", obj.modTime, bytes.NewReader(obj.body))
}

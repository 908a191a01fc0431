package pop

import (
	"context"
	"encoding/xml"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// prefetcher fetches segments ahead of the players: when a playlist or MPD
// refresh lists a new last segment, that segment and the next one are
// fetched at once (the origin holds the request for the next one until it
// exists), so the first players to ask find them cached or in flight.
//
// An HLS media playlist names one rendition, which its player watches. An
// MPD lists every rendition of the stream, of which a PoP's players may
// watch a few: MPD refreshes prefetch only renditions whose segments
// clients asked for within watchWindow.
type prefetcher struct {
	s  *Server
	mu sync.Mutex
	// done remembers the keys already prefetched; guarded by mu.
	done *simplelru.LRU[string, struct{}]
	// pruned is when watched was last swept; guarded by mu.
	pruned time.Time

	// watched maps a rendition's directory (a segment key up to its last
	// '/') to when a client last asked for one of its files, in Unix
	// nanoseconds: string -> *atomic.Int64.
	watched  sync.Map
	nWatched atomic.Int64
}

// watchWindow is how long a rendition counts as watched after a client
// asked for one of its files.
const watchWindow = 10 * time.Second

// maxWatched bounds the renditions remembered as watched.
const maxWatched = 10000

// watch records that a client asked for key, a segment or init segment.
// It allocates only the first time a rendition is seen.
func (p *prefetcher) watch(key string, now time.Time) {
	dir := key[:strings.LastIndexByte(key, '/')+1]
	if v, ok := p.watched.Load(dir); ok {
		v.(*atomic.Int64).Store(now.UnixNano())
		return
	}
	if p.nWatched.Load() >= maxWatched {
		return
	}
	t := &atomic.Int64{}
	t.Store(now.UnixNano())
	if _, loaded := p.watched.LoadOrStore(dir, t); !loaded {
		p.nWatched.Add(1)
	}
}

// isWatched reports whether a client asked for a file in key's directory
// within watchWindow of now.
func (p *prefetcher) isWatched(key string, now time.Time) bool {
	v, ok := p.watched.Load(key[:strings.LastIndexByte(key, '/')+1])
	return ok && now.UnixNano()-v.(*atomic.Int64).Load() <= int64(watchWindow)
}

// sweep forgets renditions not watched for a minute, at most once every
// watchWindow. The caller holds p.mu.
func (p *prefetcher) sweepLocked(now time.Time) {
	if now.Sub(p.pruned) < watchWindow {
		return
	}
	p.pruned = now
	p.watched.Range(func(k, v any) bool {
		if now.UnixNano()-v.(*atomic.Int64).Load() > int64(time.Minute) {
			p.watched.Delete(k)
			p.nWatched.Add(-1)
		}
		return true
	})
}

func newPrefetcher(s *Server) *prefetcher {
	done, _ := simplelru.NewLRU[string, struct{}](4096, nil)
	return &prefetcher{s: s, done: done}
}

// onComplete looks at a completed object; manifests trigger prefetches.
func (p *prefetcher) onComplete(o *object) {
	if o.status != 200 || !o.class.isManifest() {
		return
	}
	body, ok := o.body.Bytes()
	if !ok {
		return
	}
	var keys []string
	if o.class == classPlaylist {
		keys = nextFromPlaylist(o.key, body)
	} else {
		now := time.Now()
		p.mu.Lock()
		p.sweepLocked(now)
		p.mu.Unlock()
		keys = slices.DeleteFunc(nextFromMPD(o.key, body), func(k string) bool { return !p.isWatched(k, now) })
	}
	for _, k := range keys {
		p.mu.Lock()
		_, seen := p.done.Get(k)
		if !seen {
			p.done.Add(k, struct{}{})
		}
		p.mu.Unlock()
		if !seen {
			p.fetch(k)
		}
	}
}

// fetch fills key in the background, detached from any client.
func (p *prefetcher) fetch(key string) {
	s := p.s
	s.goroutines.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FetchTimeout)
		defer cancel()
		o, how, err := s.get(ctx, key, classify(key), false)
		if err != nil {
			return
		}
		if how == lookupMiss {
			s.metrics.prefetches.Inc()
		}
		o.body.attach()
		defer o.body.detach()
		o.body.wait(ctx)
	})
}

// nextFromPlaylist returns, for an HLS media playlist at key, the keys of
// its last segment and of the one after it.
func nextFromPlaylist(key string, body []byte) []string {
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil || len(pl.Segments) == 0 || pl.Endlist {
		return nil
	}
	return lastAndNext(key, pl.Segments[len(pl.Segments)-1].URI)
}

// nextFromMPD returns, for every Representation of a dynamic MPD at key
// addressed by $Number$ and a SegmentTimeline, the keys of its last
// segment and of the one after it.
//
// It reads only the few fields it needs with encoding/xml: dash-mpd's own
// XML decoder loops forever on some malformed input (found by
// FuzzNextFromManifests, corpus entry 8a4cafdbcf4d825a), and MPDs here
// come from upstream.
func nextFromMPD(key string, body []byte) []string {
	var m mpdPrefetchView
	if err := xml.Unmarshal(body, &m); err != nil || m.Type != "dynamic" || len(m.Periods) == 0 {
		return nil
	}
	var out []string
	for _, as := range m.Periods[len(m.Periods)-1].AdaptationSets {
		for _, rep := range as.Representations {
			tpl := rep.SegmentTemplate
			if tpl == nil {
				tpl = as.SegmentTemplate
			}
			if tpl == nil || tpl.Timeline == nil || tpl.StartNumber == nil || !strings.Contains(tpl.Media, "$Number$") {
				continue
			}
			count := uint64(0)
			for _, s := range tpl.Timeline.S {
				count += uint64(max(s.R, 0)) + 1
			}
			if count == 0 {
				continue
			}
			last := *tpl.StartNumber + count - 1
			uri := strings.NewReplacer("$RepresentationID$", rep.ID, "$Number$", strconv.FormatUint(last, 10)).Replace(tpl.Media)
			out = append(out, lastAndNext(key, uri)...)
		}
	}
	return out
}

// mpdPrefetchView is the part of an MPD (ISO/IEC 23009-1 5.3) that
// nextFromMPD reads.
type mpdPrefetchView struct {
	Type    string `xml:"type,attr"`
	Periods []struct {
		AdaptationSets []struct {
			SegmentTemplate *templateView `xml:"SegmentTemplate"`
			Representations []struct {
				ID              string        `xml:"id,attr"`
				SegmentTemplate *templateView `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

type templateView struct {
	Media       string  `xml:"media,attr"`
	StartNumber *uint64 `xml:"startNumber,attr"`
	Timeline    *struct {
		S []struct {
			R int `xml:"r,attr"`
		} `xml:"S"`
	} `xml:"SegmentTimeline"`
}

// lastAndNext resolves uri against the manifest key, and derives the next
// segment's key by incrementing the number that ends its file name
// ("41.m4s" -> "42.m4s"); only the first is returned when there is none.
func lastAndNext(key, uri string) []string {
	base, err := url.Parse(key)
	if err != nil {
		return nil
	}
	ref, err := url.Parse(uri)
	if err != nil || ref.IsAbs() || ref.Host != "" {
		return nil
	}
	last := base.ResolveReference(ref)
	out := []string{last.RequestURI()}
	dir, file := path.Split(last.Path)
	ext := path.Ext(file)
	num := strings.TrimSuffix(file, ext)
	i := len(num)
	for i > 0 && num[i-1] >= '0' && num[i-1] <= '9' {
		i--
	}
	if i == len(num) {
		return out
	}
	n, err := strconv.ParseUint(num[i:], 10, 64)
	if err != nil {
		return out
	}
	next := *last
	next.Path = dir + num[:i] + strconv.FormatUint(n+1, 10) + ext
	return append(out, next.RequestURI())
}

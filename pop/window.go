package pop

import (
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/layout"
)

// window is what a manifest lists of one rendition's segments: the
// numbers of its first and last.
type window struct {
	dir         string // the rendition's directory (layout.Object.Dir)
	first, last uint64
}

// playlistWindows returns the windows of the segments an HLS media
// playlist at key lists, grouped by rendition in the order they come
// (a playlist going on into a new epoch lists two renditions: the one its
// last segment is in comes last), whether the playlist has ended, and
// the part its preload hint names (partOrder; 0 for none).
func playlistWindows(key string, body []byte) (ws []window, ended bool, hint uint64) {
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		return nil, false, 0
	}
	base, err := url.Parse(key)
	if err != nil {
		return nil, pl.Endlist, 0
	}
	if h := pl.PreloadHint; h != nil {
		if o, ok := resolveObject(base, h.URI); ok && o.Kind == layout.Part {
			hint = partOrder(o.Number, o.Part)
		}
	}
	for _, seg := range pl.Segments {
		o, ok := resolveSegment(base, seg.URI)
		if !ok {
			continue
		}
		if n := len(ws); n > 0 && ws[n-1].dir == o.Dir {
			ws[n-1].first = min(ws[n-1].first, o.Number)
			ws[n-1].last = max(ws[n-1].last, o.Number)
			continue
		}
		ws = append(ws, window{dir: o.Dir, first: o.Number, last: o.Number})
	}
	return ws, pl.Endlist, hint
}

// mpdWindows returns, for every Representation of the last Period of an
// MPD at key addressed by $Number$ and a SegmentTimeline, the window of
// segments it lists, and whether the MPD is dynamic (live). A static MPD
// counts only under layout.VODPrefix (a VOD or a clip): a live stream's
// MPD turns static when it ends, which says nothing new. It reads only
// the few fields it needs with encoding/xml: dash-mpd's own XML decoder
// loops forever on some malformed input (found by FuzzNextFromManifests,
// corpus entry 8a4cafdbcf4d825a), and MPDs here come from upstream.
func mpdWindows(key string, body []byte) (ws []window, dynamic bool) {
	var m mpdPrefetchView
	if err := xml.Unmarshal(body, &m); err != nil || len(m.Periods) == 0 {
		return nil, false
	}
	dynamic = m.Type == "dynamic"
	if !dynamic && !strings.HasPrefix(key, layout.VODPrefix) {
		return nil, false
	}
	base, err := url.Parse(key)
	if err != nil {
		return nil, false
	}
	for _, as := range m.Periods[len(m.Periods)-1].AdaptationSets {
		for _, rep := range as.Representations {
			tpl := rep.SegmentTemplate
			if tpl == nil {
				tpl = as.SegmentTemplate
			}
			if tpl == nil || tpl.Timeline == nil || tpl.StartNumber == nil || !strings.Contains(tpl.Media, "$Number$") {
				continue
			}
			// An S of negative @r repeats until the next MPD update
			// (ISO/IEC 23009-1 5.3.9.6.3): at the end of a low-latency
			// MPD's timeline it announces the segment being produced,
			// which counts as one, the last listed.
			count := uint64(0)
			for _, s := range tpl.Timeline.S {
				count += uint64(min(max(s.R, 0), 1<<20)) + 1
			}
			if count == 0 {
				continue
			}
			last := *tpl.StartNumber + count - 1
			uri := strings.NewReplacer("$RepresentationID$", rep.ID, "$Number$", strconv.FormatUint(last, 10)).Replace(tpl.Media)
			if o, ok := resolveSegment(base, uri); ok {
				ws = append(ws, window{dir: o.Dir, first: *tpl.StartNumber, last: o.Number})
			}
		}
	}
	return ws, dynamic
}

// resolveSegment resolves a segment's URI against its manifest's URL and
// reports the segment of the layout it names, if any.
func resolveSegment(base *url.URL, uri string) (layout.Object, bool) {
	o, ok := resolveObject(base, uri)
	return o, ok && o.Kind == layout.Segment
}

// resolveObject resolves uri, relative to base, to one of our objects.
func resolveObject(base *url.URL, uri string) (layout.Object, bool) {
	ref, err := url.Parse(uri)
	if err != nil || ref.IsAbs() || ref.Host != "" {
		return layout.Object{}, false
	}
	return layout.Parse(base.ResolveReference(ref).EscapedPath())
}

// mpdPrefetchView is the part of an MPD (ISO/IEC 23009-1 5.3) that
// mpdWindows reads.
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

// segmentKey is the key of segment n of the rendition in dir.
func segmentKey(dir string, n uint64) string {
	return dir + strconv.FormatUint(n, 10) + ".m4s"
}

// knownWindows remembers, per rendition, the window the newest manifest
// this node saw listed, and per stream when it last saw one: what the
// node knows exists, so that requests for what cannot exist are answered
// without asking upstream (route.go). It is safe for concurrent use; the
// renditions and streams it remembers are bounded (maxKnown).
type knownWindows struct {
	dirs    sync.Map // string -> *atomic.Pointer[seenWindow]
	streams sync.Map // string -> *atomic.Int64, Unix nanoseconds
	n       atomic.Int64

	mu     sync.Mutex
	pruned time.Time // guarded by mu
}

// seenWindow is a window and when a manifest listed it.
type seenWindow struct {
	window
	at time.Time
}

// maxKnown bounds the renditions and streams remembered.
const maxKnown = 20000

// knownFor is how long what a manifest said is trusted.
const knownFor = time.Minute

// record notes the windows a manifest listed, now. A live manifest's
// windows replace what was known of their renditions. Those of a VOD or
// a clip (merge) only widen it: a clip of a stream still live ends
// before the stream's last segment, and must not make the node refuse
// the segments after it as too far ahead.
func (k *knownWindows) record(ws []window, merge bool, now time.Time) {
	k.sweep(now)
	for _, w := range ws {
		sw := &seenWindow{window: w, at: now}
		if v, ok := k.dirs.Load(w.dir); ok {
			p := v.(*atomic.Pointer[seenWindow])
			if old := p.Load(); merge && now.Sub(old.at) <= knownFor {
				sw.first, sw.last = min(sw.first, old.first), max(sw.last, old.last)
			}
			p.Store(sw)
		} else if k.n.Load() < maxKnown {
			p := &atomic.Pointer[seenWindow]{}
			p.Store(sw)
			if _, loaded := k.dirs.LoadOrStore(w.dir, p); !loaded {
				k.n.Add(1)
			}
		}
		k.seenStream(streamOf(w.dir), now)
	}
}

// streamOf returns the stream name of a path of the layout, "" if none.
func streamOf(path string) string {
	rest, ok := strings.CutPrefix(path, layout.Prefix)
	if !ok {
		rest, _ = strings.CutPrefix(path, layout.VODPrefix)
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// dvrDir is added to a rendition's directory to remember the window a
// DVR manifest lists apart from the live one: it tells of older
// segments that exist, and never makes a request look too far ahead.
const dvrDir = "#dvr"

// noteManifest records what a complete manifest o lists, and returns its
// windows and whether it is live (a media playlist without ENDLIST, a
// dynamic MPD).
func (s *Server) noteManifest(o *object) (ws []window, live bool) {
	body, complete := o.body.Bytes()
	if o.status != 200 || !o.class.isManifest() || !complete {
		return nil, false
	}
	now := time.Now()
	if o.class == classPlaylist {
		var ended bool
		var hint uint64
		ws, ended, hint = playlistWindows(o.key, body)
		live = !ended
		if o.hint != nil {
			o.hint.Store(hint)
		}
	} else {
		ws, live = mpdWindows(o.key, body)
	}
	if k, ok := layout.Parse(o.key); ok && (k.Kind == layout.DVRMediaPlaylist || k.Kind == layout.DVRMPD) {
		dvr := make([]window, len(ws))
		for i, w := range ws {
			w.dir += dvrDir
			dvr[i] = w
		}
		s.windows.record(dvr, false, now)
	} else {
		s.windows.record(ws, strings.HasPrefix(o.key, layout.VODPrefix), now)
	}
	if name := streamOf(o.key); name != "" {
		s.windows.seenStream(name, now)
	}
	return ws, live
}

// seenStream notes that a manifest of stream name was seen.
func (k *knownWindows) seenStream(name string, now time.Time) {
	if v, ok := k.streams.Load(name); ok {
		v.(*atomic.Int64).Store(now.UnixNano())
		return
	}
	if k.n.Load() >= maxKnown {
		return
	}
	t := &atomic.Int64{}
	t.Store(now.UnixNano())
	if _, loaded := k.streams.LoadOrStore(name, t); !loaded {
		k.n.Add(1)
	}
}

// window returns the window last seen for the rendition in dir, if seen
// within knownFor of now.
func (k *knownWindows) window(dir string, now time.Time) (seenWindow, bool) {
	v, ok := k.dirs.Load(dir)
	if !ok {
		return seenWindow{}, false
	}
	sw := v.(*atomic.Pointer[seenWindow]).Load()
	return *sw, now.Sub(sw.at) <= knownFor
}

// stream reports whether a manifest of stream name was seen within
// knownFor of now.
func (k *knownWindows) stream(name string, now time.Time) bool {
	v, ok := k.streams.Load(name)
	return ok && now.UnixNano()-v.(*atomic.Int64).Load() <= int64(knownFor)
}

// sweep forgets what was not seen for two knownFor, at most once every
// knownFor.
func (k *knownWindows) sweep(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.pruned) < knownFor {
		return
	}
	k.pruned = now
	old := now.Add(-2 * knownFor)
	k.dirs.Range(func(key, v any) bool {
		if v.(*atomic.Pointer[seenWindow]).Load().at.Before(old) {
			k.dirs.Delete(key)
			k.n.Add(-1)
		}
		return true
	})
	k.streams.Range(func(key, v any) bool {
		if v.(*atomic.Int64).Load() < old.UnixNano() {
			k.streams.Delete(key)
			k.n.Add(-1)
		}
		return true
	})
}

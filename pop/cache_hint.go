package pop

import (
	"strings"

	"github.com/golivestream/live/internal/layout"
)

// What the caches do with the preload hints of LL-HLS media playlists
// (object.hint): a playlist is as new as the part it hints.

// hintDropped is an object's hint once dropHinting took it while it was
// being filed: complete does not file it.
const hintDropped = ^uint64(0)

// noteHint records the part the preload hint of o, a media playlist,
// names, from its complete body, before its readers see it end: a part
// served right after must find it (dropHinting), even before o is filed.
func (o *object) noteHint(body []byte) {
	if o.hint != nil && o.status == 200 {
		_, _, hint := playlistWindows(o.key, body)
		o.hint.Store(hint)
	}
}

// dropHinting removes key from the cache if it is a playlist whose
// preload hint names part order (partOrder) or an earlier one: a
// playlist that stands still while the part it hints is served. A
// playlist complete but not filed yet (its hint is known: noteHint) is
// taken from the fills, and complete leaves it out.
func (c *cache) dropHinting(key string, order uint64) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o, ok := sh.filling[key]; ok && o.hint != nil {
		if h := o.hint.Load(); h != 0 && h <= order {
			delete(sh.filling, key)
			o.hint.Store(hintDropped)
		}
	}
	if o, ok := sh.lru.Peek(key); ok && o.hint != nil {
		if h := o.hint.Load(); h != 0 && h <= order {
			sh.expired = true
			sh.lru.Remove(key)
			sh.expired = false
		}
	}
}

// offer files the complete playlist o under key as well, when the cache
// would keep it there, unless it holds there a playlist with no hint (one
// that ended, or without parts) or with a hint of o's part or a later
// one, or a fill of key is on its way (its answer replaces what is
// filed). o's hint must be set (noteManifest).
func (c *cache) offer(key string, o *object) {
	h := o.hint.Load()
	if h == 0 {
		return
	}
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.filling[key]; ok {
		return
	}
	if cur, ok := sh.lru.Peek(key); ok && (cur.hint == nil || cur.hint.Load() == 0 || cur.hint.Load() >= h) {
		return
	}
	cp := *o
	cp.key = key
	body, _ := o.body.Bytes()
	kept := withLength(&cp, len(body))
	if sh.admitsLocked(kept) {
		sh.fileLocked(kept)
	}
}

// offerCurrent files o, a playlist that answered a blocking reload
// (_HLS_msn), as the rendition's current playlist too: the answer to the
// same request without _HLS_msn and _HLS_part, which the origin makes
// from the same playlist (a delta update stays one). A plain reload then
// gets it from this node instead of a fetch, and a node never holds a
// current playlist older than a blocking answer it has, which
// dropPlaylistsHinting would drop as soon as a part past it is served:
// a fetch for each part. It is filed in the layer of this node that a
// request for it looks in (Server.get).
func (s *Server) offerCurrent(o *object) {
	if o.class != classPlaylist || o.status != 200 || !o.cacheable || o.hint == nil {
		return
	}
	path, query, ok := strings.Cut(o.key, "?")
	if !ok {
		return
	}
	d, err := layout.ParseDirectives(query)
	if err != nil || !d.HasMSN {
		return
	}
	key := path
	if d.Skip != "" {
		key += "?" + layout.Directives{Skip: d.Skip}.Query()
	}
	if s.ring == nil || s.ring.get(key) == s.self {
		s.local.offer(key, o)
	} else {
		s.proxy.offer(key, o)
	}
}

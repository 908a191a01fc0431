package pop

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/golivestream/live/internal/layout"
)

// route is where a request for a cached path leads: its cache key (the
// one spelling of the object, with the query parameters that name another
// object and no others) and its class.
type route struct {
	key   string
	class class
	obj   layout.Object
	// part is, for an LL-HLS part, its index in the segment that key
	// names (server_part.go); -1 for a whole object.
	part int
}

// refusal is a request the PoP answers itself, without asking upstream:
// its status, the reason sent to the client and the metric's label.
type refusal struct {
	status int
	reason string
	label  string
}

// The refusals, by metric label (live_pop_refused_total{reason}).
var (
	refuseLayout    = &refusal{http.StatusNotFound, "no such object", "layout"}
	refuseDirective = &refusal{http.StatusBadRequest, "malformed delivery directive", "directive"}
	refuseAhead     = &refusal{http.StatusNotFound, "segment too far ahead", "ahead"}
	refuseMSNAhead  = &refusal{http.StatusBadRequest, "_HLS_msn too far ahead", "ahead"}
	refuseBudget    = &refusal{http.StatusTooManyRequests, "too many requests for objects not known to exist", "miss_budget"}
	refuseTooLong   = &refusal{http.StatusRequestURITooLong, "URI too long", "uri_too_long"}
	refuseOverload  = &refusal{http.StatusServiceUnavailable, "this node is full: try again, or another node", "overload"}
)

// refusalLabels are the labels of live_pop_refused_total.
var refusalLabels = []string{"layout", "directive", "ahead", "miss_budget", "uri_too_long", "overload"}

// aheadSlack is how many segments past the last one a manifest this node
// saw listed a request may ask for and still be fetched: the origin
// holds a request for the segment being produced and the one after it,
// and this node's manifest may be a few seconds older than the player's.
const aheadSlack = 10

// aheadFor is how long what a manifest said of a rendition's last segment
// is trusted to refuse requests ahead of it: 10 s of 1-s segments is well
// within aheadSlack.
const aheadFor = 10 * time.Second

// routeFor finds where r leads, or the refusal to answer it with. Only
// paths of the layout (internal/layout), in their one spelling, are
// fetched; path is r's path as sent, without a token; what the node
// knows of a rendition's window (knownWindows)
// refuses segments far ahead of it.
func (s *Server) routeFor(r *http.Request, path string, now time.Time) (route, *refusal) {
	if len(path)+len(r.URL.RawQuery) > layout.MaxURI {
		return route{}, refuseTooLong
	}
	o, ok := layout.Parse(path)
	if !ok {
		return route{}, refuseLayout
	}
	rt := route{key: path, class: classOf(o.Kind), obj: o, part: -1}
	switch o.Kind {
	case layout.Part:
		// Answered from its segment: one key, one fetch, one copy.
		rt.key, rt.part = o.Dir+layout.SegmentPath(o.Number), o.Part
		fallthrough
	case layout.Segment:
		if w, ok := s.windows.window(o.Dir, now); ok && now.Sub(w.at) <= aheadFor && o.Number > w.last+aheadSlack {
			return route{}, refuseAhead
		}
	case layout.MediaPlaylist:
		if r.URL.RawQuery == "" {
			return rt, nil
		}
		d, err := layout.ParseDirectives(r.URL.RawQuery)
		if err != nil {
			return route{}, refuseDirective
		}
		if w, ok := s.windows.window(o.Dir, now); ok && d.HasMSN && now.Sub(w.at) <= aheadFor {
			switch {
			case d.MSN > w.last+aheadSlack:
				// RFC 8216bis 6.2.5.2: a server answers 400 to an
				// _HLS_msn more than two past the playlist's last
				// segment; this node's playlist may be older.
				return route{}, refuseMSNAhead
			case d.MSN <= w.last:
				// The playlist this node has already lists it: the
				// answer is the current playlist, which needs no
				// key of its own.
				d.MSN, d.Part, d.HasMSN, d.HasPart = 0, 0, false, false
			}
		}
		if q := d.Query(); q != "" {
			rt.key = path + "?" + q
		}
	}
	return rt, nil
}

// classOf is the class of the objects of kind k.
func classOf(k layout.Kind) class {
	switch k {
	case layout.Multivariant, layout.MediaPlaylist, layout.DVRMultivariant, layout.DVRMediaPlaylist,
		layout.VODMultivariant, layout.VODMediaPlaylist:
		return classPlaylist
	case layout.MPD, layout.DVRMPD, layout.VODMPD:
		return classManifest
	case layout.Init:
		return classInit
	case layout.Segment, layout.Part:
		return classSegment
	}
	return classOther
}

// classify is the class of a path: of the layout, or other.
func classify(path string) class {
	o, ok := layout.Parse(path)
	if !ok {
		return classOther
	}
	return classOf(o.Kind)
}

// known reports whether this node knows that rt's object exists, or
// existed lately: a manifest it saw within knownFor lists the segment,
// the rendition (for its init segment and playlist) or the stream (for
// its manifests). The origin keeps segments for a window after they leave
// the manifests, so a segment up to one more window old counts too.
func (s *Server) known(rt route, now time.Time) bool {
	o := rt.obj
	switch o.Kind {
	case layout.Multivariant, layout.MPD, layout.DVRMultivariant, layout.DVRMPD, layout.VODMultivariant, layout.VODMPD:
		return s.windows.stream(o.Stream, now)
	case layout.Init, layout.MediaPlaylist, layout.DVRMediaPlaylist, layout.VODMediaPlaylist:
		_, ok := s.windows.window(o.Dir, now)
		return ok
	case layout.Segment, layout.Part:
		w, ok := s.windows.window(o.Dir, now)
		span := w.last - w.first + 1
		if ok && o.Number <= w.last+aheadSlack && (w.first < 2*span || o.Number >= w.first-2*span) {
			return true
		}
		// A DVR window lists far older segments than the live one.
		d, ok := s.windows.window(o.Dir+dvrDir, now)
		return ok && o.Number >= d.first && o.Number <= d.last+aheadSlack
	}
	return false
}

// errOverBudget refuses a fetch that a client's miss budget does not
// allow.
var errOverBudget = errors.New("over the client's budget of fetches for objects not known to exist")

// mayFetch is the caches' gate: a fetch that client's request would start
// for key may go if the node knows the object exists (known) or the
// client has budget left. Requests of the PoP itself and of peers
// (client "") always may.
func (s *Server) mayFetch(key, client string) error {
	if client == "" {
		return nil
	}
	now := time.Now()
	path, _, _ := strings.Cut(key, "?")
	if o, ok := layout.Parse(path); ok && s.known(route{key: key, class: classOf(o.Kind), obj: o}, now) {
		return nil
	}
	if !s.budget.take(client, now) {
		return errOverBudget
	}
	return nil
}

// missBudget bounds, per client address, the upstream fetches of objects
// the node does not know to exist (Server.known) and does not hold: random
// segment numbers or stream names would otherwise each cost an origin
// fetch. A token bucket per address (per /64 for IPv6), in a bounded LRU
// of addresses. It is safe for concurrent use.
type missBudget struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets *simplelru.LRU[netip.Addr, *bucket] // guarded by mu
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBudgetAddrs bounds the addresses whose budget is remembered; an
// address forgotten starts again with a full bucket.
const maxBudgetAddrs = 65536

func newMissBudget(rate float64, burst int) *missBudget {
	b, _ := simplelru.NewLRU[netip.Addr, *bucket](maxBudgetAddrs, nil)
	return &missBudget{rate: rate, burst: float64(burst), buckets: b}
}

// take spends one fetch of the client at remoteAddr ("host:port"), and
// reports whether it had one left.
func (m *missBudget) take(remoteAddr string, now time.Time) bool {
	return m.takeAddr(clientAddr(remoteAddr), now)
}

// peek reports whether the client at addr has budget left, without
// spending it.
func (m *missBudget) peek(addr netip.Addr) bool {
	addr = budgetKey(addr)
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.buckets.Peek(addr)
	return !ok || min(m.burst, b.tokens+time.Since(b.at).Seconds()*m.rate) >= 1
}

// takeAddr spends one of addr's budget and reports whether it had one.
func (m *missBudget) takeAddr(addr netip.Addr, now time.Time) bool {
	addr = budgetKey(addr)
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.buckets.Get(addr)
	if !ok {
		b = &bucket{tokens: m.burst, at: now}
		m.buckets.Add(addr, b)
	}
	b.tokens = min(m.burst, b.tokens+now.Sub(b.at).Seconds()*m.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// clientAddr is the address of remoteAddr ("host:port").
func clientAddr(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// budgetKey is the address a budget is kept for: the IPv4 address, or
// the /64 of an IPv6 one (one subscriber's prefix).
func budgetKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// refuse answers r with ref, uncached by anyone.
func (s *Server) refuse(w http.ResponseWriter, ref *refusal) {
	s.metrics.refused[ref.label].Inc()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if ref.status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	http.Error(w, ref.reason, ref.status)
}

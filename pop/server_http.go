package pop

import (
	"errors"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golivestream/live/access"

	"github.com/golivestream/live/internal/fastpath"
	"github.com/golivestream/live/internal/httpserve"
	"github.com/golivestream/live/internal/layout"
)

// ServeHTTP is the proxy layer: it answers GET and HEAD for the URL
// layout (live, DVR and VOD) from the caches, and passes anything else under the origin's
// paths (APIs, the clock) through uncached.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Access-Control-Allow-Origin"] = corsOrigin
	h["Access-Control-Expose-Headers"] = corsExpose
	if isKeyPath(r.URL.Path) {
		s.serveKey(w, r) // keys of encrypted streams, never cached: keys.go
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	case r.URL.Path == "/healthz":
		h.Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
		return
	}
	if !layout.Under(r.URL.Path) && !strings.HasPrefix(r.URL.Path, layout.TokenPrefix) {
		if len(r.URL.EscapedPath())+len(r.URL.RawQuery) > layout.MaxURI {
			s.refuse(w, refuseTooLong)
			return
		}
		s.passThrough(w, r)
		return
	}
	now := time.Now()
	// The path as sent: Path itself when it had no escapes (RawPath
	// empty; any character that would need one is refused by the layout),
	// which spares EscapedPath's scan on every request.
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.EscapedPath()
	}
	c, path, ok := withToken(path)
	if !ok {
		s.refuse(w, refuseLayout)
		return
	}
	rt, ref := s.routeFor(r, path, now)
	if ref != nil {
		s.refuse(w, ref)
		return
	}
	forwarded := s.fromPeer(r)
	var pol *policy
	if !forwarded {
		if !c.hasToken && tokenRedirect(w, r, path, rt.obj.Kind) {
			return
		}
		c.addr = access.RequestAddr(r, s.cfg.TrustedProxies)
		pol = s.policies.get(rt.obj.Stream)
		if err := s.admitted(c, rt.obj.Stream, pol); err != nil {
			s.deny(w, err)
			return
		}
	}
	if s.admission.closed.Load() && !forwarded && s.startsSession(r, rt.obj.Kind, now) {
		h["Retry-After"] = retryAfterOverload
		s.refuse(w, refuseOverload)
		return
	}
	client := r.RemoteAddr
	if forwarded {
		client = "" // judged by the node it came through
	}
	o, how, err := s.get(r.Context(), rt.key, rt.class, forwarded, client)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		if errors.Is(err, errOverBudget) {
			s.refuse(w, refuseBudget)
			return
		}
		s.metrics.requests.WithLabelValues(rt.class.String(), "error").Inc()
		s.log.Warn("upstream failed", "key", rt.key, "error", err)
		h.Set("Cache-Control", "no-store")
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	if !forwarded && pol == nil {
		// The stream's rules were not known before its first response.
		if err := s.admitted(c, rt.obj.Stream, s.policies.get(rt.obj.Stream)); err != nil {
			s.deny(w, err)
			return
		}
	}
	if rt.part >= 0 {
		s.servePart(w, r, o, rt.part, how)
		return
	}
	s.serve(w, r, o, how, forwarded)
}

// objectBlock returns the head lines of an object's responses from the
// fast path (fastpath.HeaderBlockWriter): the CORS pair every response
// has, and header's entries but Content-Length; nil when header holds a
// name the fast path's writer keeps for itself.
func objectBlock(header http.Header) []byte {
	b := make([]byte, 0, len(corsBlock)+64*len(header))
	b = append(b, corsBlock...)
	b, ok := fastpath.AppendHeaderLines(b, header)
	if !ok {
		return nil
	}
	return b
}

// corsBlock is the CORS pair as head lines.
var corsBlock, _ = fastpath.AppendHeaderLines(nil, http.Header{
	"Access-Control-Allow-Origin":   corsOrigin,
	"Access-Control-Expose-Headers": corsExpose,
})

// Header values shared by every response: net/http only reads them, and
// sharing them keeps the cache-hit path free of allocations.
var (
	corsOrigin  = []string{"*"}
	corsExpose  = []string{"Date, ETag, Last-Modified, Age, Content-Length, Content-Range, X-Cache"}
	xCacheValue = [...][]string{{"hit"}, {"coalesced"}, {"miss"}, {"stale"}}
	ageValues   = func() (v [120][]string) {
		for i := range v {
			v[i] = []string{strconv.Itoa(i)}
		}
		return v
	}()
)

// fromPeer reports whether r was forwarded by another node of this PoP.
// The header is only believed when it names a configured peer: a client
// that sets it must not make every node fetch from the origin.
func (s *Server) fromPeer(r *http.Request) bool {
	hop := r.Header.Get(HopHeader)
	return hop != "" && hop != s.self && s.ring != nil && contains(s.cfg.Peers, hop)
}

// serve writes o: its headers, then its body as it arrives. An upstream
// failure after the headers aborts the connection, so the client sees a
// broken transfer, never a clean short body. A request not forwarded by a
// peer is a viewer's.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, o *object, how lookup, forwarded bool) {
	now := time.Now()
	if !forwarded {
		s.load.seen(r, now) // a viewer, for Load (load.go)
	}
	if o.class == classSegment || o.class == classInit {
		s.prefetcher.watch(o.key, now) // MPD refreshes prefetch watched renditions only
	}
	s.metrics.served[o.class][how].Inc()
	if c := s.stats.counters(o.key); c != nil {
		c.requests.Add(1)
		if how != lookupMiss {
			c.hits.Add(1)
		}
	}
	h := w.Header()
	code := precondition(r.Header, o)
	_, ranged := r.Header["Range"]
	if bw, ok := w.(fastpath.HeaderBlockWriter); ok && o.block != nil && code == 0 && !ranged && len(h) == 2 {
		// The fast path's whole answer, h holding only the CORS pair
		// set above: those and the object's header leave as the lines
		// formatted when it was stored (objectBlock), not through the
		// map. A sixth of a hit's user-space time went to copying,
		// iterating and clearing the map.
		delete(h, "Access-Control-Allow-Origin")
		delete(h, "Access-Control-Expose-Headers")
		bw.SetHeaderBlock(o.block)
		if cl, ok := o.header["Content-Length"]; ok {
			h["Content-Length"] = cl
		}
	} else {
		for k, v := range o.header {
			h[k] = v
		}
	}
	if age := int(now.Sub(o.stored) / time.Second); age < len(ageValues) {
		h["Age"] = ageValues[age]
	} else {
		h["Age"] = []string{strconv.Itoa(age)}
	}
	h["X-Cache"] = xCacheValue[how]

	if code != 0 {
		// No body, and as http.ServeContent: a 304 carries no
		// representation metadata, nor Last-Modified beside an ETag.
		delete(h, "Content-Length")
		if code == http.StatusNotModified {
			delete(h, "Content-Type")
			delete(h, "Content-Encoding")
			if h["Etag"] != nil {
				delete(h, "Last-Modified")
			}
		}
		w.WriteHeader(code)
		return
	}
	if ranged && o.status == http.StatusOK && !httpserve.LimitRanges(r.Header) {
		if body, complete := o.body.Bytes(); complete {
			s.serveRange(w, r, o, body)
			return
		}
		if s.serveRangeArriving(w, r, o) {
			return
		}
		// The body failed before the range could be answered: the
		// answer below streams what there is and aborts, as for any
		// request on a failed fill.
	}
	w.WriteHeader(o.status)
	if r.Method == http.MethodHead {
		return
	}
	waited := how == lookupCoalesced || how == lookupMiss
	if body, complete := o.body.Bytes(); complete {
		if waited && o.class == classPlaylist {
			s.metrics.released(releasePlaylist, o)
		}
		n, sent := o.file.sendTo(w)
		if sent {
			s.metrics.sendfile.Inc()
		} else {
			m, _ := w.Write(body) // a client gone mid-body is no one else's problem
			n = int64(m)
		}
		s.metrics.bytes[o.class].Add(float64(n))
		s.load.bytes.Add(n)
		return
	}
	s.streamFill(w, r, o, 0, math.MaxInt)
	// From the arrival of the last bytes to their being written.
	switch {
	case waited && o.class == classPlaylist:
		s.metrics.released(releasePlaylist, o)
	case waited && o.class == classSegment:
		s.metrics.released(releaseSegment, o)
	}
}

// passThrough proxies a request outside the cached layout to an origin
// of the fleet's directory, else to the first healthy origin, uncached.
func (s *Server) passThrough(w http.ResponseWriter, r *http.Request) {
	target := s.origins.order()[0].base
	if s.cfg.Directory != nil {
		if base, ok := s.cfg.Directory.Some(); ok {
			if u, err := url.Parse(strings.TrimSuffix(base, "/")); err == nil {
				target = u
			}
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: s.client.Transport,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("Access-Control-Allow-Origin") // ours is set
			resp.Header.Del("Access-Control-Expose-Headers")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client left: normal, and nobody to answer.
				s.metrics.clientGone.Inc()
				return
			}
			s.log.Warn("pass-through failed", "path", r.URL.Path, "error", err)
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

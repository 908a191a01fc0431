package pop

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// An LL-HLS part (internal/layout kind Part, {n}.{p}.m4s) is one CMAF
// chunk of segment n: a run of boxes (moof, mdat; styp or prft may come
// first) ending with an mdat. The PoP answers a part from the segment it
// holds or is filling, fetching the segment (one key, one upstream
// request, shared with the players of whole segments) rather than the
// part: a cache holds each byte once. A part not produced yet is waited
// for while the segment's bytes arrive.

// errNoPart is the answer for a part its segment does not have.
var errNoPart = errors.New("no such part in the segment")

// partSpan finds part p in body, a segment's bytes so far (complete when
// over): it returns its span [from, to) once known, found false while
// more bytes are needed, or errNoPart when the complete segment has no
// part p (or its boxes are malformed).
func partSpan(body []byte, p int, over bool) (from, to int, found bool, err error) {
	start, off, part := 0, 0, 0
	for {
		if off == len(body) && over {
			return 0, 0, false, errNoPart
		}
		if len(body)-off < 8 {
			if over {
				return 0, 0, false, errNoPart
			}
			return 0, 0, false, nil
		}
		size := uint64(binary.BigEndian.Uint32(body[off:]))
		typ := string(body[off+4 : off+8])
		switch size {
		case 0: // to the end of the file: not in a segment of ours
			return 0, 0, false, errNoPart
		case 1: // a 64-bit size follows
			if len(body)-off < 16 {
				if over {
					return 0, 0, false, errNoPart
				}
				return 0, 0, false, nil
			}
			size = binary.BigEndian.Uint64(body[off+8:])
		}
		if size < 8 || size > uint64(len(body)-off) && over {
			return 0, 0, false, errNoPart
		}
		end := uint64(off) + size
		if typ != "mdat" {
			off = int(min(end, uint64(len(body)))) // a header ahead of what arrived waits below
			if end > uint64(len(body)) {
				return 0, 0, false, nil
			}
			continue
		}
		if end > uint64(len(body)) {
			return 0, 0, false, nil // the mdat is still arriving
		}
		if part == p {
			return start, int(end), true, nil
		}
		part++
		off = int(end)
		start = off
	}
}

// servePart writes part p of o, a segment that may still be arriving.
func (s *Server) servePart(w http.ResponseWriter, r *http.Request, o *object, p int, how lookup) {
	h := w.Header()
	if o.status != http.StatusOK {
		s.serve(w, r, o, how, false) // the origin's 404 or error, as for the segment
		return
	}
	o.body.attach()
	defer o.body.leave() // the rest of the segment is still worth caching
	soFar, over, _, _ := o.body.Next(0)
	_, _, there, _ := partSpan(soFar, p, over)
	from, to, err := s.awaitPart(r.Context(), o, p)
	if n, ok := segmentNumber(o.key); ok && err == nil {
		// A playlist of the rendition that this node holds and whose
		// preload hint names this part or an earlier one predates the
		// part: cached before it came, or filled from an answer that
		// did. A player reloading it now must get a newer one, or it
		// asks for the part again (gohlslib, which reloads without
		// blocking requests, plays it twice). Those holding later
		// hints stay. In a PoP of several nodes this drops the copies
		// of the node that serves the part, not those of the
		// playlist's owner, which expire after their lifetime (half a
		// segment).
		s.dropPlaylistsHinting(o.key[:strings.LastIndexByte(o.key, '/')+1], partOrder(n, p))
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		h.Set("Cache-Control", "no-store")
		if errors.Is(err, errNoPart) {
			http.Error(w, "no such part", http.StatusNotFound)
			return
		}
		http.Error(w, "upstream failed", http.StatusBadGateway)
		return
	}
	body, _, _, _ := o.body.Next(0)
	for _, k := range []string{"Content-Type", "Cache-Control", "Last-Modified"} {
		if v, ok := o.header[k]; ok {
			h[k] = v
		}
	}
	etag := partETag(o.header.Get("Etag"), p)
	if etag != "" {
		h.Set("Etag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(to-from))
	h["X-Cache"] = xCacheValue[how]
	s.metrics.served[classSegment][how].Inc()
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if !there {
		s.metrics.released(releasePart, o)
	}
	n, _ := w.Write(body[from:to])
	s.metrics.bytes[classSegment].Add(float64(n))
	s.load.bytes.Add(int64(n))
	now := time.Now()
	s.load.seen(r, now)
	s.prefetcher.watch(o.key, now)
}

// awaitPart waits until part p of o's body is there and returns its span.
func (s *Server) awaitPart(ctx context.Context, o *object, p int) (from, to int, err error) {
	for {
		body, over, ferr, more := o.body.Next(0)
		if !over && more == nil {
			// Bytes, and no more to come: the body is over, complete or
			// failed.
			over = true
			if _, complete := o.body.Bytes(); !complete {
				ferr = errPartUpstream
			}
		}
		if ferr != nil {
			// A failed fill may still hold the whole part.
			if from, to, found, _ := partSpan(body, p, false); found {
				return from, to, nil
			}
			return 0, 0, ferr
		}
		from, to, found, err := partSpan(body, p, over)
		switch {
		case err != nil:
			return 0, 0, err
		case found:
			return from, to, nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}

// errPartUpstream is the answer for a part whose segment failed upstream
// before the part was there.
var errPartUpstream = errors.New("segment failed upstream before the part")

// partETag is the ETag of part p of a segment whose ETag is etag: the
// origin's, "...-{n}.{p}"; "" for a weak or absent one.
func partETag(etag string, p int) string {
	if len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		return ""
	}
	return etag[:len(etag)-1] + "." + strconv.Itoa(p) + `"`
}

// partOrder orders the parts of a rendition: part p of segment n, as a
// number that is never 0.
func partOrder(n uint64, p int) uint64 { return n<<16 | uint64(p+1)&0xffff }

// segmentNumber is the number of the segment at key, ".../{n}.m4s".
func segmentNumber(key string) (uint64, bool) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	n, err := strconv.ParseUint(strings.TrimSuffix(name, ".m4s"), 10, 64)
	return n, err == nil
}

// dropPlaylistsHinting removes from both cache layers the media playlist
// of the rendition in dir and its delta updates (not the blocking
// reloads' answers: each holds what it was asked for) when their preload
// hint names part order or an earlier one.
func (s *Server) dropPlaylistsHinting(dir string, order uint64) {
	for _, k := range playlistKeys() {
		s.local.dropHinting(dir+k, order)
		if s.proxy != nil {
			s.proxy.dropHinting(dir+k, order)
		}
	}
}

// playlistKeys are the keys of a rendition's media playlist and its delta
// updates, relative to its directory.
func playlistKeys() [3]string {
	return [...]string{"index.m3u8", "index.m3u8?_HLS_skip=YES", "index.m3u8?_HLS_skip=v2"}
}

package pop

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// serveRange answers a Range request for a complete object: 206 with the
// part asked for, or 416 (http.ServeContent, which also honours If-Range).
func (s *Server) serveRange(w http.ResponseWriter, r *http.Request, o *object, body []byte) {
	delete(w.Header(), "Content-Length") // ServeContent sets the part's
	modTime, _ := http.ParseTime(o.header.Get("Last-Modified"))
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", modTime, bytes.NewReader(body))
	s.metrics.bytes[o.class].Add(float64(cw.n))
	s.load.bytes.Add(cw.n)
}

// serveRangeArriving answers a Range request for an object still
// arriving. One plain range of a body of known length is streamed as its
// bytes arrive, as a 206; anything else (several ranges, If-Range, a range
// past the end, no length) waits for the whole body and is answered by
// serveRange. It reports false if the body failed before the range was
// answered, with nothing written.
func (s *Server) serveRangeArriving(w http.ResponseWriter, r *http.Request, o *object) bool {
	size, err := strconv.ParseInt(o.header.Get("Content-Length"), 10, 64)
	from, to, ok := singleRange(r.Header.Get("Range"), size)
	if err != nil || !ok || r.Header.Get("If-Range") != "" {
		o.body.attach()
		defer o.body.detach()
		if o.body.wait(r.Context()) != nil {
			// Gone: nothing to answer. Failed: the caller aborts.
			return r.Context().Err() != nil
		}
		body, _ := o.body.Bytes()
		s.serveRange(w, r, o, body)
		return true
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes") // as ServeContent's 206 for a complete object
	h.Set("Content-Range", "bytes "+strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(to-1, 10)+"/"+strconv.FormatInt(size, 10))
	h.Set("Content-Length", strconv.FormatInt(to-from, 10))
	w.WriteHeader(http.StatusPartialContent)
	if r.Method == http.MethodHead {
		return true
	}
	s.streamFill(w, r, o, int(from), int(to))
	return true
}

// singleRange parses a Range header of one byte range (RFC 9110 14.1.2)
// over a body of size bytes, into the half-open span [from, to). It
// reports false for anything else: several ranges, another unit, or a
// range that is malformed or not satisfiable.
func singleRange(v string, size int64) (from, to int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || size <= 0 || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // a suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 || a >= size {
		return 0, 0, false
	}
	if last == "" {
		return a, size, true
	}
	b, err := strconv.ParseInt(last, 10, 64)
	if err != nil || b < a {
		return 0, 0, false
	}
	return a, min(b+1, size), true
}

// streamFill writes bytes [from, to) of o's body as they arrive. An
// upstream failure before the end aborts the response, so that the client
// sees an error, never a clean short body.
func (s *Server) streamFill(w http.ResponseWriter, r *http.Request, o *object, from, to int) {
	o.body.attach()
	satisfied := false
	defer func() {
		if satisfied {
			o.body.leave()
		} else {
			o.body.detach() // the client left, or the body failed
		}
	}()
	var flush func()
	if f, ok := w.(http.Flusher); ok {
		flush = f.Flush
	}
	n, err := o.body.writeSpan(r.Context(), w, flush, from, to)
	satisfied = err == nil
	s.metrics.bytes[o.class].Add(float64(n))
	s.load.bytes.Add(int64(n))
	if err != nil && r.Context().Err() == nil && !errors.Is(err, context.Canceled) {
		s.metrics.aborted.Inc()
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

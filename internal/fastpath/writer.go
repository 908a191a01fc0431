package fastpath

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// writer is the http.ResponseWriter of the fast path, a Flusher and a
// FileSender. It writes the response head together with the first body
// bytes in one writev(2), and the rest of the body straight to the
// connection; a body of unknown length is chunked. It is reused from one
// request to the next.
type writer struct {
	sock        *sock
	closing     *atomic.Bool // the server's: once set, responses end their connection
	date        *dateCache   // the server's
	header      http.Header
	block       []byte      // head lines given by SetHeaderBlock; nil if none
	head        []byte      // the response head, built once per response
	bufs        [6][]byte   // what one write sends
	pending     []byte      // body bytes held back (Write)
	out         net.Buffers // over bufs
	chunk       [18]byte    // a chunk-size line
	lengthValue [1]string

	isHead  bool // a HEAD request: the body is not sent
	close   bool // the connection ends after this response
	status  int
	length  int64 // the Content-Length given, -1 if none
	written int64
	chunked bool
	ended   bool // the last chunk was written (WriteLast)
	sent    bool // the head was written
	err     error

	// fs sends bodies from files (SendFile).
	fs fileSend
}

var (
	_ http.Flusher      = (*writer)(nil)
	_ FileSender        = (*writer)(nil)
	_ LastWriter        = (*writer)(nil)
	_ HeaderBlockWriter = (*writer)(nil)
)

// HeaderBlockWriter is a ResponseWriter that takes part of the response
// header as head lines formatted beforehand (AppendHeaderLines), as a
// cache formats those of an object once for all its hits, instead of
// having them copied into the header map, iterated over and cleared
// for each response. The head is the status line, the block, then the
// map's entries. The map must not hold a name the block does.
type HeaderBlockWriter interface {
	// SetHeaderBlock makes block part of the head, as it is whatever
	// the status (a 304's Content-Type is not left out); before
	// WriteHeader. The writer keeps block, which must not change, until
	// the response ends.
	SetHeaderBlock(block []byte)
}

// AppendHeaderLines appends h's entries to b as head lines ("Name:
// value\r\n", a value's CR and LF made spaces, as the writer does) for
// SetHeaderBlock, but for Content-Length, which the writer reads from
// the map. It reports false, b unchanged, when h holds a name the writer
// reads or writes itself (Transfer-Encoding, Connection, Date).
func AppendHeaderLines(b []byte, h http.Header) ([]byte, bool) {
	for _, k := range [...]string{"Transfer-Encoding", "Connection", "Date"} {
		if _, ok := h[k]; ok {
			return b, false
		}
	}
	for k, vv := range h {
		if k == "Content-Length" {
			continue
		}
		for _, v := range vv {
			b = appendHeaderLine(b, k, v)
		}
	}
	return b, true
}

// SetHeaderBlock implements HeaderBlockWriter.
func (w *writer) SetHeaderBlock(block []byte) {
	if !w.sent {
		w.block = block
	}
}

// LastWriter is a ResponseWriter that can send the last bytes of a body
// together with its end: a chunked body's last chunk and the chunk that
// ends it (RFC 9112 7.1) in one write, where Write and the end of the
// handler take two, and two packets. The fast path's writer is one.
type LastWriter interface {
	// WriteLast writes p as the last bytes of the body; nothing may be
	// written after them.
	WriteLast(p []byte) (int, error)
}

// reset prepares w for the next response.
func (w *writer) reset(isHead, close bool) {
	clear(w.header)
	w.block = nil
	w.isHead, w.close = isHead, close
	w.status, w.length, w.written = 0, -1, 0
	w.chunked, w.ended, w.sent, w.err = false, false, false, nil
	w.pending = w.pending[:0]
}

func (w *writer) Header() http.Header { return w.header }

// WriteHeader records the status; the head leaves with the first body
// bytes, or when the handler returns or flushes.
func (w *writer) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx: the handlers here send none
		w.status = code
	}
}

// bodyAllowed reports whether the response may have a body (RFC 9110 6.4.1).
func (w *writer) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

// Write sends p as body bytes, after the head if it has not left yet.
// Without a Content-Length, the first smallBody bytes are held, so that a
// small body that is all there is gets one, as net/http gives it.
func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.WriteHeader(http.StatusOK)
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.isHead {
		return len(p), nil // as net/http: HEAD's body is eaten
	}
	if !w.sent {
		if w.declared() < 0 && len(w.pending)+len(p) <= smallBody {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.buildHead()
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	if err := w.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteLast is Write, with the chunk that ends a chunked body sent
// along.
func (w *writer) WriteLast(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.sent || w.declared() >= 0 || len(w.pending)+len(p) > smallBody {
		w.ended = true // send ends a chunked body; anything else ignores it
	}
	n, err := w.Write(p)
	if err != nil || !w.sent {
		w.ended = false // nothing left, or held: finish ends the body
	}
	return n, err
}

// send writes what has not left, in one writev(2): the head, the body
// bytes held and p, framed as a chunk when the body is chunked, and the
// last chunk after them when WriteLast said so.
func (w *writer) send(p []byte) error {
	w.out = w.bufs[:0]
	if !w.sent {
		w.out = append(w.out, w.head)
	}
	body := len(w.pending) + len(p)
	switch {
	case w.chunked && body > 0:
		line := append(strconv.AppendInt(w.chunk[:0], int64(body), 16), '\r', '\n')
		w.out = append(w.out, line, w.pending, p, crlf)
	case !w.chunked:
		w.out = append(w.out, w.pending, p)
	}
	if w.chunked && w.ended {
		w.out = append(w.out, lastChunk)
	}
	w.sent = true
	_, err := w.sock.writeBuffers(w.out)
	w.pending = w.pending[:0]
	if err != nil {
		w.err, w.close = err, true
		return err
	}
	w.written += int64(body)
	return nil
}

// smallBody is how much of a body without a Content-Length is held to see
// whether it is all (net/http holds as much).
const smallBody = 2 << 10

// crlf and lastChunk are only read.
var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// declared returns the Content-Length the handler set, or -1.
func (w *writer) declared() int64 {
	v := w.header["Content-Length"]
	if len(v) != 1 {
		return -1
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Flush sends the head if it has not left, and any body bytes held.
func (w *writer) Flush() {
	if !w.sent && w.err == nil {
		w.WriteHeader(http.StatusOK)
		w.buildHead()
		w.send(nil)
	}
}

// finish ends the response after the handler returned: what has not left
// (a body held entirely gets a Content-Length), the last chunk, and whether
// the body was complete.
func (w *writer) finish() error {
	if w.err != nil {
		return w.err
	}
	w.WriteHeader(http.StatusOK)
	if !w.sent {
		if w.declared() < 0 && !w.isHead && w.bodyAllowed() {
			w.header["Content-Length"] = append(w.lengthValue[:0], strconv.Itoa(len(w.pending)))
		}
		w.buildHead()
		if err := w.send(nil); err != nil {
			return err
		}
	}
	if w.chunked && !w.ended {
		if _, err := w.sock.Write(lastChunk); err != nil {
			w.err, w.close = err, true
			return err
		}
	}
	if w.length >= 0 && w.written < w.length && !w.isHead && w.bodyAllowed() {
		w.close = true // a short body: the client must see the connection end
	}
	return nil
}

// buildHead serializes the status and the header into w.head, adding the
// Date, and either the framing the handler declared or chunking.
func (w *writer) buildHead() {
	w.length = w.declared()
	if w.length < 0 || !w.bodyAllowed() {
		delete(w.header, "Content-Length")
		w.length = -1
	}
	w.chunked = w.length < 0 && w.bodyAllowed() && !w.isHead
	// As net/http: a response begun once the server is shutting down, or
	// whose handler says Connection: close, ends the connection.
	if w.closing.Load() || hasClose(w.header["Connection"]) {
		w.close = true
	}
	b := append(w.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, crlf...)
	b = append(b, w.block...)
	for k, vv := range w.header {
		if k == "Transfer-Encoding" || k == "Connection" {
			continue // the framing and the connection are ours to say
		}
		if k == "Content-Type" && w.status == http.StatusNotModified {
			continue // as net/http: no representation metadata on a 304
		}
		for _, v := range vv {
			b = appendHeaderLine(b, k, v)
		}
	}
	if _, ok := w.header["Date"]; !ok {
		b = append(b, "Date: "...)
		b = w.date.append(b, time.Now())
		b = append(b, crlf...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.close {
		b = append(b, "Connection: close\r\n"...)
	}
	w.head = append(b, crlf...)
}

// hasClose reports whether a Connection header's values list "close".
func hasClose(values []string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// appendHeaderLine appends the head line of header k's value v.
func appendHeaderLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = appendHeaderValue(b, v)
	return append(b, crlf...)
}

// appendHeaderValue appends v with any CR or LF made a space, as net/http
// does, so that no value can end the head.
func appendHeaderValue(b []byte, v string) []byte {
	// Two IndexByte scans, vectorized, where ContainsAny tests each byte
	// against a set: 2% of a PoP's CPU under a flash crowd.
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		return append(b, v...)
	}
	for i := range len(v) {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// dateCache is the Date header's value of the current second, shared by
// a Server's connections: formatting it for every response took 1% of a
// PoP's CPU under a flash crowd.
type dateCache struct{ v atomic.Pointer[dateValue] }

type dateValue struct {
	sec int64
	b   []byte // never changed once stored
}

// append appends the Date value of now (RFC 9110 5.6.7) to b.
func (d *dateCache) append(b []byte, now time.Time) []byte {
	sec := now.Unix()
	if v := d.v.Load(); v != nil && v.sec == sec {
		return append(b, v.b...)
	}
	v := &dateValue{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	d.v.Store(v)
	return append(b, v.b...)
}

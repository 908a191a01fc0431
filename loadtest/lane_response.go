package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxHeadBytes bounds a response's head and a chunk-size line.
const maxHeadBytes = 64 << 10

// errTooLarge is a body beyond what is read of its kind.
var errTooLarge = errors.New("body too large")

// head is what the lane uses of a response's head (RFC 9112 section 4
// and 6).
type head struct {
	status   int
	length   int64  // Content-Length; -1 when absent or overridden
	chunked  bool   // Transfer-Encoding ends with chunked
	noBody   bool   // 204, 304
	close    bool   // the connection ends after this response
	location string // for redirects only
}

// readHead reads the head of the next final response, skipping 1xx
// ones. started tells whether any byte of the response arrived.
func (l *lane) readHead() (h head, started bool, err error) {
	before := l.received
	defer func() { started = l.received > before }()
	for {
		h, err = l.readOneHead()
		if err != nil || h.status >= 200 {
			return h, false, err
		}
		if h.status == 101 {
			return h, false, errors.New("unexpected 101 Switching Protocols")
		}
	}
}

// readOneHead reads one response head.
func (l *lane) readOneHead() (head, error) {
	h := head{length: -1}
	line, err := l.readLine()
	if err != nil {
		return h, err
	}
	// RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return h, fmt.Errorf("malformed status line %q", line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return h, fmt.Errorf("malformed status line %q", line)
		}
		h.status = h.status*10 + int(c-'0')
	}
	http10, keepAlive, te := line[7] == '0', false, false
	for {
		line, err := l.readLine()
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding of a field we ignore
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return h, fmt.Errorf("malformed header line %q", line)
		}
		name, value := line[:i], bytes.TrimSpace(line[i+1:])
		switch {
		case fieldIs(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok || (h.length >= 0 && h.length != n) {
				return h, fmt.Errorf("bad Content-Length %q", value)
			}
			h.length = n
		case fieldIs(name, "transfer-encoding"):
			te = true
			codings := value
			if j := bytes.LastIndexByte(codings, ','); j >= 0 {
				codings = bytes.TrimSpace(codings[j+1:])
			}
			h.chunked = fieldIs(codings, "chunked")
		case fieldIs(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				h.close = h.close || fieldIs(tok, "close")
				keepAlive = keepAlive || fieldIs(tok, "keep-alive")
			}
		case fieldIs(name, "location"):
			h.location = string(value)
		}
	}
	h.close = h.close || (http10 && !keepAlive)
	switch {
	case h.status == 204 || h.status == 304 || h.status < 200:
		h.noBody, h.length, h.chunked = true, 0, false
	case te:
		// RFC 9112 6.3: Transfer-Encoding overrides Content-Length; a
		// final coding other than chunked runs to the connection's close.
		h.length = -1
		h.close = h.close || !h.chunked
	case h.length < 0:
		h.close = true // delimited by the connection's close
	}
	return h, nil
}

// fieldIs reports whether b is s, ASCII case-insensitively; s is lower
// case.
func fieldIs(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecimal parses a Content-Length.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseChunkSize parses a chunk-size line, extensions ignored (RFC 9112
// 7.1).
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(c)
	}
	return n, true
}

// readLine returns the next line of the response, without its CRLF (or
// bare LF). It is valid until the next read.
func (l *lane) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.rbuf[l.r:l.w], '\n'); i >= 0 {
			line := l.rbuf[l.r : l.r+i]
			l.r += i + 1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if err := l.fill(); err != nil {
			if err == io.EOF && l.w > l.r {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// fill reads more of the response into rbuf, growing it up to
// maxHeadBytes.
func (l *lane) fill() error {
	if l.r > 0 {
		l.w = copy(l.rbuf, l.rbuf[l.r:l.w])
		l.r = 0
	}
	if l.w == len(l.rbuf) {
		if len(l.rbuf) >= maxHeadBytes {
			return errors.New("response head too large")
		}
		l.rbuf = append(l.rbuf, make([]byte, len(l.rbuf))...)
	}
	for {
		n, err := l.nc.Read(l.rbuf[l.w:])
		l.w += n
		l.received += int64(n)
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// body reads the body h announces and returns its length. With keep it
// is appended to buf[:0], at most limit bytes; otherwise it is dropped,
// and limit > 0 bounds it (a longer one is errTooLarge, one delimited by
// the connection's close is not read). The connection is closed after it
// when the response says so, or when more than the response arrived.
func (l *lane) body(h *head, keep bool, buf []byte, limit int) ([]byte, int64, error) {
	buf = buf[:0]
	var n int64
	var err error
	switch {
	case h.noBody:
	case h.chunked:
		buf, n, err = l.chunked(keep, buf, limit)
	case h.length >= 0:
		if limit > 0 && h.length > int64(limit) {
			return buf, 0, errTooLarge
		}
		buf, n, err = l.copyN(h.length, keep, buf, limit)
	case !keep && limit > 0:
		l.close() // it would end with the connection anyway
		return buf, 0, nil
	default:
		buf, n, err = l.copyN(-1, keep, buf, limit)
	}
	if err != nil {
		return buf, n, err
	}
	l.done(h)
	return buf, n, nil
}

// done ends a response whose body was read: the connection is closed
// when the response says so, or when more than the response arrived.
func (l *lane) done(h *head) {
	if h.close || l.r < l.w {
		l.close()
	} else {
		l.served++
	}
}

// chunked reads a chunked body (RFC 9112 7.1), trailers dropped.
func (l *lane) chunked(keep bool, buf []byte, limit int) ([]byte, int64, error) {
	var total int64
	for {
		line, err := l.readLine()
		if err != nil {
			return buf, total, unexpectedEOF(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return buf, total, fmt.Errorf("malformed chunk size %q", line)
		}
		if size == 0 {
			for {
				if line, err = l.readLine(); err != nil {
					return buf, total, unexpectedEOF(err)
				}
				if len(line) == 0 {
					return buf, total, nil
				}
			}
		}
		if limit > 0 && total+size > int64(limit) {
			return buf, total, errTooLarge
		}
		var n int64
		buf, n, err = l.copyN(size, keep, buf, limit)
		total += n
		if err != nil {
			return buf, total, err
		}
		if line, err = l.readLine(); err != nil || len(line) != 0 {
			return buf, total, errors.Join(errors.New("malformed chunk end"), unexpectedEOF(err))
		}
	}
}

// unexpectedEOF turns io.EOF into io.ErrUnexpectedEOF: the body was
// cut short.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// copyN reads n bytes of body (up to the connection's end when n < 0):
// appended to buf with keep (up to limit bytes of buf), else dropped.
func (l *lane) copyN(n int64, keep bool, buf []byte, limit int) ([]byte, int64, error) {
	var done int64
	if m := int64(l.w - l.r); m > 0 {
		if n >= 0 {
			m = min(m, n)
		}
		if keep {
			buf = append(buf, l.rbuf[l.r:l.r+int(m)]...)
		}
		l.r += int(m)
		done = m
	}
	if done == n {
		return buf, done, nil
	}
	if !keep && l.raw != nil {
		m, err := l.discardRaw(n - done)
		return buf, done + m, err
	}
	var r io.Reader = l.nc
	if n >= 0 {
		l.lim = io.LimitedReader{R: l.nc, N: n - done}
		r = &l.lim
	}
	var m int64
	var err error
	if keep {
		before := len(buf)
		buf, err = readAll(buf, r, limit)
		m = int64(len(buf) - before)
	} else {
		m, err = discard(l.sh.bufs, r)
	}
	done += m
	if err == nil && n >= 0 && done < n {
		err = io.ErrUnexpectedEOF
	}
	return buf, done, err
}

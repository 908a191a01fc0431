package ingest

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// errEvicted is the reason logged for a connection closed, not publishing
// yet, to make room for a new one.
var errEvicted = errors.New("silent the longest of the connections not publishing yet when a new one needed a place")

// refusalLogWindow is how often, at most, a kind of refused connection is
// logged on its own; the others of the window are summed up in one line.
const refusalLogWindow = 10 * time.Second

// refusalLog logs the connections that end before they publish. A flood
// (issue #18 C: 1000 idle connections, again every few seconds) makes them
// by the thousand, so for each kind the first of a window is logged as it
// comes and the others are only counted, then logged as one line, with
// the last one's details and "more": how many, when flush ends the window.
// live_ingest_refused_total counts each. Safe for concurrent use.
type refusalLog struct {
	log *slog.Logger

	mu sync.Mutex
	// kinds holds each kind's window; guarded by mu.
	kinds map[string]*refusalKind
}

type refusalKind struct {
	until time.Time // when the window of the last line logged ends
	more  int       // refusals not logged since
	msg   string    // the last of them
	last  []any     // and its attributes
}

// note logs msg with args, or counts it if a line of its kind was logged
// less than refusalLogWindow ago.
func (l *refusalLog) note(kind, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if l.kinds == nil {
		l.kinds = make(map[string]*refusalKind)
	}
	k := l.kinds[kind]
	if k == nil {
		k = &refusalKind{}
		l.kinds[kind] = k
	}
	if now.Before(k.until) {
		k.more++
		k.msg, k.last = msg, args
		l.mu.Unlock()
		return
	}
	k.until = now.Add(refusalLogWindow)
	l.mu.Unlock()
	l.log.Warn(msg, args...)
}

// flush logs one line for each kind with refusals counted and not
// logged, and forgets the kinds whose window has ended. Server.Run calls
// it every refusalLogWindow and when it stops.
func (l *refusalLog) flush() {
	type line struct {
		msg  string
		args []any
	}
	var lines []line
	now := time.Now()
	l.mu.Lock()
	for kind, k := range l.kinds {
		switch {
		case k.more > 0:
			lines = append(lines, line{k.msg, append(k.last[:len(k.last):len(k.last)], "more", k.more)})
			k.more, k.msg, k.last = 0, "", nil
		case !now.Before(k.until):
			delete(l.kinds, kind)
		}
	}
	l.mu.Unlock()
	for _, ln := range lines {
		l.log.Warn(ln.msg, ln.args...)
	}
}

// runFlush flushes l every refusalLogWindow until stop is closed, and
// once more then.
func (l *refusalLog) runFlush(stop <-chan struct{}) {
	t := time.NewTicker(refusalLogWindow)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush()
		case <-stop:
			l.flush()
			return
		}
	}
}

// endPending counts and logs a connection that ended, with err, before
// it published.
func (s *Server) endPending(c *conn, err error) {
	var reason, msg string
	switch {
	case c.evicted.Load():
		reason, msg = "evicted", "rtmp connection closed before publishing, to make room for a new one"
		err = errEvicted // not what the read of a connection closed under it says
	case errors.Is(err, ErrProtocol):
		reason, msg = "protocol", "rtmp connection closed: protocol violation"
	case isTimeout(err):
		reason, msg = "timeout", "rtmp connection closed: no publish within the publish timeout"
	}
	if reason != "" {
		s.metrics.refused.WithLabelValues(reason).Inc()
		s.refusals.note(reason, msg, "remote", c.nc.RemoteAddr().String(), "reason", err)
		return
	}
	// Refused by refuse, which counted it, or the client went away: a
	// kind of its own for each reason refuse counts.
	s.refusals.note("refused "+refusal("", err), "rtmp connection refused", "remote", c.nc.RemoteAddr().String(), "reason", err)
}

// refuseConn counts and logs a connection refused as it came, then closes
// it.
func (s *Server) refuseConn(c *conn, err error) {
	s.metrics.refused.WithLabelValues("too_many").Inc()
	s.refusals.note("too_many", "rtmp connection refused: too many connections", "remote", c.nc.RemoteAddr().String(), "reason", err)
	c.nc.Close()
}

package web

import (
	"log/slog"
	"sync"
	"time"
)

// dropLog writes refused beacons and session requests to the log without
// letting a flood of them flood it: at most one line per kind and reason
// each interval, counting the refusals since the previous line. The metrics
// count every one. It is safe for concurrent use.
type dropLog struct {
	log   *slog.Logger
	every time.Duration

	mu sync.Mutex
	// lines is guarded by mu; kinds and reasons are fixed sets written in
	// this package, so it stays small.
	lines map[dropKey]*dropLine
}

type dropKey struct{ kind, reason string }

type dropLine struct {
	loggedAt time.Time // zero: never logged
	dropped  int       // refusals since loggedAt, not yet logged
}

func newDropLog(log *slog.Logger, every time.Duration) *dropLog {
	return &dropLog{log: log, every: every, lines: map[dropKey]*dropLine{}}
}

// maxDropMsg bounds the example message a line quotes.
const maxDropMsg = 200

// note counts one refusal of kind (beacon, session request) for reason at
// now, and logs it, with msg as an example, unless a line for the same
// kind and reason was written within the interval.
func (d *dropLog) note(kind, reason, msg string, now time.Time) {
	k := dropKey{kind, reason}
	d.mu.Lock()
	l := d.lines[k]
	if l == nil {
		l = &dropLine{}
		d.lines[k] = l
	}
	l.dropped++
	if !l.loggedAt.IsZero() && now.Sub(l.loggedAt) < d.every {
		d.mu.Unlock()
		return
	}
	n := l.dropped
	l.loggedAt, l.dropped = now, 0
	d.mu.Unlock()
	if len(msg) > maxDropMsg {
		msg = msg[:maxDropMsg]
	}
	d.log.Info("qoe "+kind+" refused", "reason", reason, "count", n, "example", msg) // count: since the previous line
}

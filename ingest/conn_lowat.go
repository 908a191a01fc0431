package ingest

import "time"

// lowatTuner sizes the socket's receive low-water mark to what the
// publisher sends in lowatDelay, so reads happen in bursts while data is
// held back at most that long (a keyframe, which closes segments, is larger
// and is never held). It only grows and shrinks by re-measuring each second.
type lowatTuner struct {
	at       time.Time
	received uint64
}

// lowatDelay bounds how long the kernel may hold received bytes back.
const (
	lowatDelay = 20 * time.Millisecond
	lowatMax   = 64 << 10
)

// update returns the low-water mark for the rate seen since the last call.
func (l *lowatTuner) update(now time.Time, received uint64) (int, bool) {
	if l.at.IsZero() {
		l.at, l.received = now, received
		return 0, false
	}
	elapsed := now.Sub(l.at)
	if elapsed <= 0 {
		return 0, false
	}
	rate := float64(received-l.received) / elapsed.Seconds()
	l.at, l.received = now, received
	return min(int(rate*lowatDelay.Seconds()), lowatMax), true
}

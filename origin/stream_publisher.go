package origin

import (
	"slices"
	"time"
)

// A stream's lifecycle: a publisher session attaches to it (a new
// instance, or one resumed) and detaches from it. Detached for good
// (Session.Close), the stream ends: its playlists get EXT-X-ENDLIST, its
// MPD becomes static, and it lingers for Config.Linger before the server
// forgets it. Detached because the publisher was lost (Session.Drop), it
// stays live for Config.ReconnectWindow, then ends unless a publisher
// came back.

// publishing reports whether a publisher session feeds st.
func (st *stream) publishing() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.session != nil
}

// attach makes sess, beginning at now, the publisher of st, and publishes
// a snapshot with sess's renditions (st's own if it resumes st) and st's
// ladder renditions, which their transcoder will add to again.
func (st *stream) attach(sess *Session, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.session = sess
	st.sessionStart, st.sessionBase = now, sess.base
	prev := st.snap.Load()
	next := &snapshot{}
	for _, t := range sess.tracks {
		r := &rendition{id: t.rid, info: t.pk.Info()}
		if p := prev.rendition(t.rid); p != nil {
			*r = *p
		}
		r.partial = newPartial(r.next)
		r.init = &object{
			body:        t.init(),
			contentType: contentType(r.info),
			etag:        initETag(st.epoch, t.rid),
			modTime:     now,
			immutable:   true,
		}
		next.renditions = append(next.renditions, r)
	}
	for _, r := range prev.renditions {
		if r.ladder { // resumed: the transcoder will add to them again
			c := *r
			c.partial = newPartial(c.next)
			next.renditions = append(next.renditions, &c)
		}
	}
	st.rebuildLocked(next, now)
	st.publishLocked(next)
}

// detach takes sess, whose packagers are flushed, off st, if it is still
// st's publisher. Unless lost, or with a negative Config.ReconnectWindow,
// st ends. Lost, st stays live for the reconnect window, waiting for its
// publisher, then ends (endLost).
func (st *stream) detach(sess *Session, lost bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.session != sess {
		return
	}
	st.session = nil
	uptime := time.Since(st.sessionStart).Round(time.Millisecond)
	reconnect := st.env.cfg.ReconnectWindow
	if !lost || reconnect < 0 {
		st.endLocked(time.Now())
		sess.log.Info("stream ended", "uptime", uptime)
		return
	}
	// The segments after the flushed ones will not come from this
	// publisher: requests for them wait, as for any segment not yet
	// begun, for one that comes back.
	next := &snapshot{renditions: slices.Clone(st.snap.Load().renditions)}
	for i, r := range next.renditions {
		if r.partial != nil && !r.ladder {
			r.partial.end(false)
			c := *r
			c.partial = nil
			next.renditions[i] = &c
		}
	}
	st.rebuildLocked(next, time.Now())
	st.publishLocked(next)
	st.stopTimerLocked()
	st.endTimer = time.AfterFunc(reconnect, st.endLost)
	sess.log.Info("publisher gone without unpublishing: the stream stays live for its return", "uptime", uptime, "reconnect_window", reconnect)
}

// endLocked marks st ended: its playlists get EXT-X-ENDLIST, its MPD
// becomes static, and it is dropped after Config.Linger unless a
// publisher resumes it.
func (st *stream) endLocked(now time.Time) {
	// A new snapshot: the published one is never modified, and readers
	// hold it without a lock.
	next := &snapshot{renditions: slices.Clone(st.snap.Load().renditions), ended: true}
	st.rebuildLocked(next, now)
	st.arch.endLocked(now)
	st.publishLocked(next)
	// No more segments will come; a ladder rendition's may still, from
	// its transcoder, until it has flushed.
	for _, r := range next.renditions {
		if r.partial != nil && !r.ladder {
			r.partial.end(false)
		}
	}
	st.stopTimerLocked()
	st.endTimer = time.AfterFunc(st.env.cfg.Linger, func() { st.env.forget(st) })
}

// endLost ends st if it is still waiting for a lost publisher.
func (st *stream) endLost() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.session != nil || st.snap.Load().ended {
		return
	}
	st.endLocked(time.Now())
	st.env.log.Info("stream ended: its publisher did not come back", "stream", st.name)
}

// supersede ends st, which a new instance of its name replaces, if it was
// waiting for its lost publisher; it lingers. An ended st's linger runs
// on.
func (st *stream) supersede(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.snap.Load().ended {
		st.endLocked(now)
	}
}

// close ends st's publisher session, or st's wait for a lost one, and
// stops its timer: the server is closing.
func (st *stream) close() {
	st.mu.Lock()
	sess := st.session
	st.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	st.endLost()
	st.stopTimer()
}

// stopTimer cancels a pending end or drop of the stream.
func (st *stream) stopTimer() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopTimerLocked()
}

// stopTimerLocked is stopTimer with st.mu held.
func (st *stream) stopTimerLocked() {
	if st.endTimer != nil {
		st.endTimer.Stop()
		st.endTimer = nil
	}
}

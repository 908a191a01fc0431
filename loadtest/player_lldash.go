package loadtest

import (
	"context"
	"errors"
	"time"
)

// playLLDASH plays tracks as dash.js does in low-latency mode (DASH-IF
// IOP, low-latency modes; ISO/IEC 23009-1 5.3.9.2 and Annex K): it starts
// the ServiceDescription's target latency behind the live edge, asks for
// each segment availabilityTimeOffset before its end (a segment being
// produced, whose chunks the server sends as they are made) and plays
// each chunk as soon as its last byte is in (walkChunks). The segment
// after the last one the MPD lists is where the timeline puts it: at the
// end of the one before, as long as the last one listed. The first track
// reloads the MPD every minimumUpdatePeriod; each track runs on its own,
// the second in the side goroutine.
func (p *player) playLLDASH(ctx context.Context, tracks []*track) error {
	lead := tracks[0].list
	for _, t := range tracks {
		if l := t.list; l.dash == nil || !l.dash.chunked || l.dash.availZero.IsZero() || len(l.durations) == 0 {
			return p.play(ctx, tracks)
		}
	}
	target := lead.dash.target
	if target <= 0 {
		target = 3 * lead.durations[len(lead.durations)-1] // our suggestedPresentationDelay
	}
	// The presentation time to start at, on the MPD's timeline.
	from := time.Now().Add(-target).Sub(lead.dash.availZero)
	for _, t := range tracks {
		n, start := dashAt(t.list, from)
		t.next = n
		t.ll = &llTrack{timer: stoppedTimer(), p: p, t: t, tracks: tracks, chunkEnd: start}
		defer t.ll.timer.Stop()
		t.fetched = -max(from-start, 0)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if len(tracks) == 1 {
		return p.dashLoop(sctx, tracks, tracks[0], p.main, true)
	}
	return p.runBeside(ctx, stop,
		func(g getter) error { return p.dashLoop(sctx, tracks, tracks[1], g, false) },
		func() error { return p.dashLoop(sctx, tracks, tracks[0], p.main, true) })
}

// dashAt returns the segment of l that presentation time at falls in
// (or the first after it), and its start: past the list's end, where the
// timeline will put it.
func dashAt(l *segmentList, at time.Duration) (uint64, time.Duration) {
	d := l.dash
	for i, s := range d.starts {
		if at < s+l.durations[i] {
			return l.first + uint64(i), s
		}
	}
	last := len(d.starts) - 1
	end, nominal := d.starts[last]+l.durations[last], max(l.durations[last], time.Millisecond)
	k := (at - end) / nominal
	return listEnd(l) + uint64(k), end + k*nominal
}

// segment returns where segment n of t is on l's timeline: listed, or
// after the last listed one, at the end of the one before it as its
// chunks said (for the next one), else as long as the last one listed.
func (lt *llTrack) segment(l *segmentList, n uint64) (start, dur time.Duration) {
	d := l.dash
	if l.listed(n) {
		i := n - l.first
		return d.starts[i], l.durations[i]
	}
	last := len(d.starts) - 1
	end, nominal := d.starts[last]+l.durations[last], l.durations[last]
	start = end + time.Duration(n-listEnd(l))*nominal
	if lt.known && n == lt.t.next {
		start = lt.chunkEnd
	}
	return start, nominal
}

// listOf returns t's list, which the first track's MPD reloads change.
func (p *player) listOf(t *track) *segmentList {
	p.mu.Lock()
	defer p.mu.Unlock()
	return t.list
}

// dashLoop plays track t of tracks on g until ctx is done or the session
// must start over; lead reloads the MPD.
func (p *player) dashLoop(ctx context.Context, tracks []*track, t *track, g getter, lead bool) error {
	lt := t.ll
	for ctx.Err() == nil {
		l := p.listOf(t)
		due := t.loaded.Add(l.refresh)
		if lead && !time.Now().Before(due) {
			if err := p.dashRefresh(ctx, tracks, t); err != nil &&
				(errors.Is(err, errStopped) || t.failures >= maxRefreshFailures) {
				return err
			}
			continue
		}
		n := t.next
		if n < l.first {
			return errBehind
		}
		start, dur := lt.segment(l, n)
		wake := l.dash.avail(start + dur).Add(-l.dash.availOffset)
		if lead && due.Before(wake) {
			wake = due
		}
		if wait := time.Until(wake); wait > 0 {
			if !sleepOn(ctx, lt.timer, wait) {
				return ctx.Err()
			}
			continue
		}
		if l.listed(n) && lt.chunkEnd < start {
			lt.chunkEnd = start // a gap in the timeline is no media
		}
		lt.known = false
		_, _, at, err := p.fetch(g, getRequest{base: t.url, ref: l.uri(n), sink: lt}, classPart)
		if err != nil {
			if errors.Is(err, errStopped) {
				return err
			}
			if t.tries++; t.tries >= maxSegmentTries {
				t.next, t.tries = n+1, 0
			}
			sleepOn(ctx, lt.timer, retryWait)
			continue
		}
		t.tries = 0
		if !lt.known {
			// No chunk said where it ends: where the timeline (or the
			// guess) has it.
			p.mu.Lock()
			p.dashCreditLocked(t, start+dur, at)
			p.mu.Unlock()
		}
		t.next = n + 1
	}
	return ctx.Err()
}

// chunk credits a chunk of the segment being read, as its mdat's last
// byte arrived: the media up to the end of its samples (tfdt and trun).
func (lt *llTrack) chunk(moof []byte) {
	at := time.Now()
	start, d, ok := moofTiming(moof)
	if !ok {
		return
	}
	p := lt.p
	p.mu.Lock()
	defer p.mu.Unlock()
	dt := lt.t.list.dash
	lt.known = true
	p.dashCreditLocked(lt.t, mediaTime(start+d, dt.timescale)-dt.pto, at)
}

// dashCreditLocked gives t the media up to presentation time end,
// arrived at `at`; p.mu is held.
func (p *player) dashCreditLocked(t *track, end time.Duration, at time.Time) {
	lt := t.ll
	if end <= lt.chunkEnd {
		return
	}
	t.fetched += end - lt.chunkEnd
	lt.chunkEnd = end
	if dt := t.list.dash; dt.dated() {
		t.wallEnd = dt.wall(end)
	}
	p.settleLocked(lt.tracks, at)
}

// dashRefresh reloads the MPD for the first track t of tracks: every
// track's list changes, under p.mu; the others' other fields are their
// goroutines'.
func (p *player) dashRefresh(ctx context.Context, tracks []*track, t *track) error {
	body, final, err := p.fetchManifest(p.main, t.url, nil, &t.buf)
	now := time.Now()
	p.advance(now)
	if err == nil {
		e, _, perr := parseMemo(p.r.memo, "mpd", body, parseMPD)
		if perr == nil {
			for _, o := range tracks {
				if e.lists[o.id] == nil {
					perr = errors.New("mpd: Representation " + o.id + " is gone")
				}
			}
		}
		if perr == nil {
			p.mu.Lock()
			for _, o := range tracks {
				o.list = e.lists[o.id]
			}
			p.mu.Unlock()
			t.url, t.loaded, t.failures = final, now, 0
			return nil
		}
		err = p.fail(&fetchError{kind: errParse, err: perr})
	}
	t.failures++
	t.loaded = now
	if !errors.Is(err, errStopped) {
		sleepOn(ctx, t.ll.timer, retryWait)
	}
	return err
}

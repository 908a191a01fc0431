package loadtest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// errBehind is a low-latency track whose next part or segment fell out
// of the playlist or MPD: the session starts over at the live edge.
var errBehind = errors.New("fell out of the live window")

// llTrack is the state of a track a player follows in low-latency mode.
// It is touched by the goroutine that runs the track only, but for what
// the player's mu guards (track.fetched, track.wallEnd).
type llTrack struct {
	timer *time.Timer // the track's goroutine's sleeps

	// LL-HLS.
	part  partPos       // the next part to fetch
	inSeg time.Duration // media of segment part.msn fetched as parts
	query []byte        // the delivery directives of the last reload; reused
	full  bool          // a whole playlist (not a delta update) was read

	// LL-DASH: the track is the chunkSink of its segments' bodies.
	p      *player
	t      *track
	tracks []*track
	// chunkEnd is the presentation time the media read so far ends at;
	// known says that a chunk of the segment being read said so.
	chunkEnd time.Duration
	known    bool
}

// playLL plays tracks in low-latency mode, as hls.js does with
// lowLatencyMode (RFC 8216bis): it starts PART-HOLD-BACK behind the
// playlist's end and goes part by part. The part the playlist hints is
// asked for before it exists (the server holds the request until it
// does), as gohlslib and AVPlayer do; then the playlist, with _HLS_msn
// and _HLS_part of that part (a blocking reload) and _HLS_skip=YES (a
// delta update) once a whole playlist was read, says how long the part
// was and hints the next. A part neither listed nor hinted is waited for
// with a blocking reload. Each track runs on its own, the second in the
// side goroutine: their parts come at their own pace.
func (p *player) playLL(ctx context.Context, tracks []*track) error {
	for _, t := range tracks {
		if t.list.ll == nil || len(t.list.ll.parts) == 0 {
			return p.play(ctx, tracks) // the audio has no parts: as players do
		}
	}
	// Where to start, on the wall clock where the playlists are dated,
	// so that the tracks start together.
	lead := tracks[0].list
	edge, dated := lead.llEdge()
	for _, t := range tracks {
		back := lead.ll.holdBack
		if e, ok := t.list.llEdge(); ok && dated {
			back += e.Sub(edge)
		}
		pos, skip, _ := t.list.llStart(back)
		t.ll = &llTrack{timer: stoppedTimer(), part: pos, full: !t.list.ll.delta}
		defer t.ll.timer.Stop()
		t.fetched = -skip
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if len(tracks) == 1 {
		return p.llLoop(sctx, tracks, tracks[0], p.main)
	}
	return p.runBeside(ctx, stop,
		func(g getter) error { return p.llLoop(sctx, tracks, tracks[1], g) },
		func() error { return p.llLoop(sctx, tracks, tracks[0], p.main) })
}

// llLoop plays track t of tracks on g until ctx is done or the session
// must start over.
func (p *player) llLoop(ctx context.Context, tracks []*track, t *track, g getter) error {
	lt := t.ll
	for ctx.Err() == nil {
		l := t.list
		step, pos := l.llNext(lt.part)
		if pos.msn != lt.part.msn {
			lt.inSeg = 0
		}
		lt.part = pos
		var err error
		switch step {
		case stepPart:
			pt, _ := l.part(pos)
			err = p.llFetch(ctx, g, tracks, t, pt.uri, classPart, pt.duration, partEnd(pt), pos.after())
		case stepSegment:
			wall, _ := l.wallEnd(pos.msn)
			err = p.llFetch(ctx, g, tracks, t, l.uri(pos.msn), classSegment, max(l.duration(pos.msn)-lt.inSeg, 0), wall, partPos{pos.msn + 1, 0})
		case stepHint:
			at, herr := p.fetchHint(g, t.url, l.ll.hintURI)
			if errors.Is(herr, errStopped) {
				return herr
			}
			// The playlist that lists the part says how long it is. A
			// hint that failed is left to that playlist too: it lists
			// the part (fetched again), or has moved past it.
			err = p.llReload(ctx, g, t, pos)
			if pt, ok := t.list.part(pos); herr == nil && err == nil && ok {
				p.llCredit(tracks, t, pt.duration, partEnd(pt), at)
				lt.part = pos.after()
			}
		case stepReload:
			err = p.llReload(ctx, g, t, pos)
		case stepBehind:
			return errBehind
		}
		if err != nil && (errors.Is(err, errStopped) || t.failures >= maxRefreshFailures) {
			return err
		}
	}
	return ctx.Err()
}

// fetchHint fetches the hinted part uri, held by the server until it is
// produced, and returns when it arrived. A hint can name a part that is
// never produced: the origin hints the part after the last one while the
// segment goes on, and the segment may then end (at a keyframe) without
// it. The server then answers 404 (origin/server_ll.go); that is the
// protocol working, counted apart (Report.HintsNotProduced), not a
// failure.
func (p *player) fetchHint(g getter, base *url.URL, uri string) (time.Time, error) {
	t0 := time.Now()
	_, _, n, err := g.do(getRequest{base: base, ref: uri})
	var fe *fetchError
	switch {
	case errors.As(err, &fe) && fe.kind == errStatus && fe.status == http.StatusNotFound:
		p.r.rec.hintsGone.Add(1)
		return time.Time{}, err
	case fe != nil:
		return time.Time{}, p.fail(fe)
	case err != nil:
		return time.Time{}, err
	}
	end := time.Now()
	p.r.rec.request(classPart, end, end.Sub(t0), n)
	return end, nil
}

// partEnd returns when part pt ends on ingest's wall clock; zero when
// undated.
func partEnd(pt *llPart) time.Time {
	if pt.date.IsZero() {
		return time.Time{}
	}
	return pt.date.Add(pt.duration)
}

// llFetch fetches uri, of class c, t's media d ending at wall, and moves
// t to next; a failure is retried after a pause, maxSegmentTries times,
// then skipped.
func (p *player) llFetch(ctx context.Context, g getter, tracks []*track, t *track, uri string, c class, d time.Duration, wall time.Time, next partPos) error {
	lt := t.ll
	_, _, at, err := p.fetch(g, getRequest{base: t.url, ref: uri}, c)
	if err != nil {
		if errors.Is(err, errStopped) {
			return err
		}
		if t.tries++; t.tries >= maxSegmentTries {
			lt.part, t.tries = next, 0
		}
		sleepOn(ctx, lt.timer, retryWait)
		return nil
	}
	t.tries = 0
	p.llCredit(tracks, t, d, wall, at)
	lt.part = next
	return nil
}

// llCredit adds d of media ending at wall, arrived at `at`, to t.
func (p *player) llCredit(tracks []*track, t *track, d time.Duration, wall, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.fetched += d
	t.ll.inSeg += d
	if !wall.IsZero() {
		t.wallEnd = wall
	}
	p.settleLocked(tracks, at)
}

// llReload reloads t's playlist with the delivery directives for part
// pos (RFC 8216bis 6.2.5): held by the server until the playlist lists
// the part, and a delta update once a whole playlist was read. A server
// that cannot block is asked a part target after the last reload.
func (p *player) llReload(ctx context.Context, g getter, t *track, pos partPos) error {
	lt, ll := t.ll, t.list.ll
	q := lt.query[:0]
	switch {
	case ll != nil && ll.canBlock:
		q = append(q, "_HLS_msn="...)
		q = strconv.AppendUint(q, pos.msn, 10)
		q = append(q, "&_HLS_part="...)
		q = strconv.AppendInt(q, int64(pos.index), 10)
	case ll != nil:
		if !sleepOn(ctx, lt.timer, time.Until(t.loaded.Add(ll.partTarget))) {
			return ctx.Err()
		}
	default: // no longer low-latency: reloaded as players do
		if !sleepOn(ctx, lt.timer, time.Until(t.loaded.Add(t.list.refresh/2))) {
			return ctx.Err()
		}
	}
	if ll != nil && ll.canSkip && lt.full {
		if len(q) > 0 {
			q = append(q, '&')
		}
		q = append(q, "_HLS_skip=YES"...)
	}
	lt.query = q
	var query []byte
	if len(q) > 0 {
		query = q
	}
	body, final, err := p.fetchManifest(g, t.url, query, &t.buf)
	now := time.Now()
	p.advance(now)
	if err == nil {
		l, fresh, perr := parseMemo(p.r.memo, "media", body, parseMedia)
		if perr == nil {
			if fresh {
				p.r.rec.listedParts(final.Path, l)
			}
			lt.full = lt.full || l.ll == nil || !l.ll.delta
			t.list, t.url, t.loaded, t.failures = l, final, now, 0
			return nil
		}
		err = p.fail(&fetchError{kind: errParse, err: perr})
	}
	t.failures++
	t.loaded = now
	if !errors.Is(err, errStopped) {
		sleepOn(ctx, lt.timer, retryWait)
	}
	return err
}

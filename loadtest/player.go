package loadtest

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxRefreshFailures is how many playlist refreshes in a row may fail
	// before the player starts over from its entry URL.
	maxRefreshFailures = 5
	// maxSegmentTries is how often a listed segment is asked before the
	// player skips it.
	maxSegmentTries = 3
	// retryWait is the pause after a failed request.
	retryWait = 500 * time.Millisecond
)

// player is one simulated viewer: it runs in one goroutine, which alone
// touches its state, and fetches its tracks' segments (video and audio)
// at the same time, as a player does. Not safe for concurrent use.
type player struct {
	r     *run
	id    int
	entry string // the entry URL: multivariant playlist or MPD
	// ua is the User-Agent, one per player: PoPs count viewers by client
	// address and User-Agent, and every player shares one address.
	ua   string
	kind kind // what it plays: HLS or DASH, low latency or not
	dash bool // kind is kindDASH or kindLLDASH
	log  *slog.Logger

	start time.Duration // when the player started, from the run's start
	// stopAt is when the player was told to stop, from the run's start;
	// set before its context is cancelled. Time after it is not its own.
	stopAt atomic.Int64
	timer  *time.Timer

	// mu guards pb, credited, and the tracks' fetched and wallEnd while
	// a low-latency player's tracks run in goroutines of their own (the
	// player's and the side one); other players take it uncontended.
	mu sync.Mutex
	pb playback
	// credited is the media of every track fetched, given to pb.
	credited time.Duration

	// main makes the player's requests; side fetches the other tracks'
	// segments at the same time, in the side goroutine (see getAll).
	main, side getter
	sideJobs   chan sideJob  // to the side goroutine; nil until it runs
	sideDone   chan struct{} // a job done; buffered, always received
	sideErr    error         // a sideJob loop's answer, read after sideDone
	sideWG     sync.WaitGroup
	errs       []error // getAll's answer; reused
}

// track is one rendition a player follows: video, or the audio alongside.
type track struct {
	url  *url.URL // HLS: the media playlist's; DASH: the MPD's
	id   string   // DASH: the Representation id
	list *segmentList
	next uint64 // the next segment to fetch
	// fetched is the media fetched in this session, less what a
	// low-latency start skips (it may start negative); wallEnd is when
	// its end reached ingest, zero when the list does not say. Guarded
	// by the player's mu where its tracks run apart.
	fetched time.Duration
	wallEnd time.Time
	// loaded is when the list was last refreshed; grew whether that
	// refresh listed a new segment.
	loaded   time.Time
	grew     bool
	tries    int    // failed tries of segment next (or part)
	failures int    // playlist refreshes failed in a row
	buf      []byte // the last manifest read for the track; reused

	ll *llTrack // the state of a low-latency track; nil otherwise
}

// run plays until ctx is done, starting over from the entry URL after
// failures, then records the player's figures.
func (p *player) run(ctx context.Context) {
	p.timer = stoppedTimer()
	p.main = p.r.newGetter(ctx, p.ua)
	defer func() {
		p.main.close()
		if p.sideJobs != nil {
			close(p.sideJobs)
			p.sideWG.Wait()
		}
		end := p.r.rec.since(time.Now())
		if at := time.Duration(p.stopAt.Load()); at > 0 {
			end = min(end, at)
		}
		p.mu.Lock() // the goroutines of the tracks are done: for form's sake
		p.note(p.pb.finish(end))
		p.r.rec.finished(viewerSpan{start: p.start, end: end, stalls: p.pb.stallTimes, kind: p.kind, played: p.pb.started}, &p.pb)
		p.mu.Unlock()
	}()
	entry, err := url.Parse(p.entry)
	if err != nil { // not with checked targets and stream names
		p.fail(&fetchError{kind: errParse, err: err})
		return
	}
	for {
		err := p.session(ctx, entry)
		if ctx.Err() != nil {
			return
		}
		p.log.Debug("player starts over", "error", err)
		if !p.sleep(ctx, time.Second) {
			return
		}
	}
}

// session loads the entry manifest, picks a rendition and plays it. It
// returns when a failure calls for starting over, or ctx is done.
func (p *player) session(ctx context.Context, entry *url.URL) error {
	var buf []byte
	body, final, err := p.fetchManifest(p.main, entry, nil, &buf)
	if err != nil {
		return err
	}
	p.r.rec.host(final.Host)
	parse, what := parseMultivariant, "multivariant"
	if p.dash {
		parse, what = parseMPD, "mpd"
	}
	e, _, err := parseMemo(p.r.memo, what, body, parse)
	if err != nil {
		return p.fail(&fetchError{kind: errParse, err: err})
	}
	v := choose(e.variants, p.r.cfg.Rendition, p.r.cfg.Bandwidth)
	ids := []string{v.id}
	if v.audio != "" && !p.r.cfg.VideoOnly {
		ids = append(ids, v.audio)
	}
	tracks := make([]*track, 0, 2)
	for _, id := range ids {
		t := &track{url: final, id: id, buf: buf}
		buf = nil
		if p.dash {
			if t.list = e.lists[id]; t.list == nil {
				return p.fail(&fetchError{kind: errParse, err: errors.New("mpd: no Representation " + id)})
			}
			t.loaded, t.grew = time.Now(), true
		} else {
			u, err := final.Parse(id)
			if err != nil {
				return p.fail(&fetchError{kind: errParse, err: err})
			}
			t.url = u
			if err := p.refresh(ctx, []*track{t}, t); err != nil {
				return err
			}
		}
		t.next = t.list.liveStart()
		tracks = append(tracks, t)
	}
	var inits []*track
	for _, t := range tracks {
		if t.list.init != "" {
			inits = append(inits, t)
		}
	}
	for _, err := range p.getAll(ctx, inits, func(t *track) string { return t.list.init }, classInit) {
		if err != nil {
			return err
		}
	}
	switch l := tracks[0].list; {
	case p.kind == kindLLHLS && l.ll != nil && len(l.ll.parts) > 0:
		return p.playLL(ctx, tracks)
	case p.kind == kindLLDASH && l.dash != nil && l.dash.chunked:
		return p.playLLDASH(ctx, tracks)
	}
	// A low-latency player of a stream without parts or chunks plays it
	// as the others do, as hls.js and dash.js do.
	return p.play(ctx, tracks)
}

// play fetches the tracks' segments in order, the one least ahead first
// and, as players do, at the same time the next segment of every other
// track not ahead of it; it refreshes a list when its next segment is not
// listed yet, and waits for a listed one that is not whole yet.
func (p *player) play(ctx context.Context, tracks []*track) error {
	batch := make([]*track, 0, len(tracks))
	for ctx.Err() == nil {
		t := tracks[0]
		for _, o := range tracks[1:] {
			if o.fetched < t.fetched {
				t = o
			}
		}
		now := time.Now()
		switch l := t.list; {
		case l.listed(t.next) && !now.Before(l.whole(t.next)):
			batch = append(batch[:0], t)
			for _, o := range tracks {
				if o != t && o.list.listed(o.next) && !now.Before(o.list.whole(o.next)) &&
					o.fetched <= t.fetched+l.duration(t.next) {
					batch = append(batch, o)
				}
			}
			failed := false
			for i, err := range p.getAll(ctx, batch, func(t *track) string { return t.list.uri(t.next) }, classSegment) {
				b := batch[i]
				switch {
				case errors.Is(err, errStopped):
					return err
				case err != nil:
					failed = true
					if b.tries++; b.tries >= maxSegmentTries {
						b.next, b.tries = b.next+1, 0
					}
				default:
					wall, _ := b.list.wallEnd(b.next)
					p.mu.Lock()
					b.fetched += b.list.duration(b.next)
					b.wallEnd = wall
					p.mu.Unlock()
					b.next, b.tries = b.next+1, 0
				}
			}
			p.settle(tracks, time.Now())
			if failed {
				p.sleep(ctx, retryWait)
			}
		case t.next < l.first:
			// Fallen out of the window: back to the live edge, as players
			// resynchronise.
			t.next = l.liveStart()
		case l.listed(t.next) && l.whole(t.next).Before(t.loaded.Add(l.refresh)):
			// Listed before it is whole: the segment an open DASH timeline
			// announces as it begins (origin/manifest_dash_ll.go). A
			// player not in low-latency mode asks for it once complete.
			// One whose end is further off than the next reload (a
			// clock far from the MPD's) waits for the reload instead.
			if !p.sleep(ctx, l.whole(t.next).Sub(now)) {
				return ctx.Err()
			}
		default:
			// RFC 8216bis 6.3.4: reload after the target duration, or half
			// of it when the last reload brought nothing new.
			wait := l.refresh
			if !t.grew {
				wait /= 2
			}
			if !p.sleep(ctx, time.Until(t.loaded.Add(wait))) {
				return ctx.Err()
			}
			if err := p.refresh(ctx, tracks, t); err != nil {
				if errors.Is(err, errStopped) || t.failures >= maxRefreshFailures {
					return err
				}
			}
		}
	}
	return ctx.Err()
}

// refresh reloads t's list: its media playlist (HLS), or the MPD, which
// updates every track (DASH).
func (p *player) refresh(ctx context.Context, tracks []*track, t *track) error {
	body, final, err := p.fetchManifest(p.main, t.url, nil, &t.buf)
	now := time.Now()
	p.advance(now)
	if err == nil {
		err = p.update(body, final, tracks, t, now)
	}
	if err != nil {
		t.failures++
		t.loaded, t.grew = now, true // retry after a whole target duration
		return err
	}
	return nil
}

// update applies a reloaded playlist or MPD. The MPD's lists are
// changed under p.mu: a low-latency DASH player's tracks read them in
// goroutines of their own.
func (p *player) update(body []byte, final *url.URL, tracks []*track, t *track, now time.Time) error {
	if !p.dash {
		l, fresh, err := parseMemo(p.r.memo, "media", body, parseMedia)
		if err != nil {
			return p.fail(&fetchError{kind: errParse, err: err})
		}
		if fresh {
			p.r.rec.listedParts(final.Path, l)
		}
		t.grew = t.list == nil || listEnd(l) > listEnd(t.list)
		t.list, t.url, t.loaded, t.failures = l, final, now, 0
		return nil
	}
	e, _, err := parseMemo(p.r.memo, "mpd", body, parseMPD)
	if err != nil {
		return p.fail(&fetchError{kind: errParse, err: err})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range tracks {
		l := e.lists[o.id]
		if l == nil {
			return p.fail(&fetchError{kind: errParse, err: errors.New("mpd: Representation " + o.id + " is gone")})
		}
		o.grew = listEnd(l) > listEnd(o.list)
		o.list, o.url, o.loaded, o.failures = l, final, now, 0
	}
	return nil
}

// listEnd returns the number after l's last segment.
func listEnd(l *segmentList) uint64 { return l.first + uint64(len(l.durations)) }

// settle gives the buffer, at `at`, the media every track has now
// fetched beyond what it was given, and samples the glass-to-player
// latency then.
func (p *player) settle(tracks []*track, at time.Time) {
	p.mu.Lock()
	p.settleLocked(tracks, at)
	p.mu.Unlock()
}

// settleLocked is settle with p.mu held.
func (p *player) settleLocked(tracks []*track, at time.Time) {
	low := tracks[0]
	for _, o := range tracks[1:] {
		if o.fetched < low.fetched {
			low = o
		}
	}
	if low.fetched <= p.credited {
		return
	}
	now := p.r.rec.since(at)
	stalls, first := p.pb.arrive(now, low.fetched-p.credited)
	p.credited = low.fetched
	p.note(stalls)
	if first {
		p.r.rec.started(now, now-p.start)
	}
	if !low.wallEnd.IsZero() {
		// The frame on screen now is the media's end less what is
		// buffered; the clock is the playback clock's (the other track
		// may have moved it a little past at).
		onScreen := low.wallEnd.Add(-p.pb.level())
		p.r.rec.latency(p.kind, p.r.rec.start.Add(p.pb.at).Sub(onScreen))
	}
}

// advance drains the buffer up to at.
func (p *player) advance(at time.Time) {
	p.mu.Lock()
	p.note(p.pb.advance(p.r.rec.since(at)))
	p.mu.Unlock()
}

// note records the stalls the playback clock just counted; p.mu is held.
func (p *player) note(stalls int) {
	if stalls > 0 {
		p.r.rec.stall(p.pb.lastStall)
	}
}

// sleep waits for d or until ctx is done, reporting whether ctx is still
// live.
func (p *player) sleep(ctx context.Context, d time.Duration) bool { return sleepOn(ctx, p.timer, d) }

// sleepOn waits for d on timer (stopped, drained) or until ctx is done,
// reporting whether ctx is still live.
func sleepOn(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}

// stoppedTimer returns a timer for sleepOn.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// choose picks a variant by policy: "lowest", "highest", "random", or
// "fit" (also ""): the highest whose bandwidth is at most bandwidth (any
// when bandwidth is 0), else the lowest.
func choose(vs []variant, policy string, bandwidth int) variant {
	lo, hi := vs[0], vs[0]
	for _, v := range vs[1:] {
		if v.bandwidth < lo.bandwidth {
			lo = v
		}
		if v.bandwidth > hi.bandwidth {
			hi = v
		}
	}
	switch policy {
	case "lowest":
		return lo
	case "highest":
		return hi
	case "random":
		return vs[rand.IntN(len(vs))]
	}
	best, ok := lo, false
	for _, v := range vs {
		if (bandwidth == 0 || v.bandwidth <= bandwidth) && (!ok || v.bandwidth > best.bandwidth) {
			best, ok = v, true
		}
	}
	return best
}

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golivestream/live/publisher"
)

const (
	// controlTick is how often the number of players is adjusted.
	controlTick = 100 * time.Millisecond
	// stopGrace bounds the wait for players and broadcasters to stop
	// beyond the run's duration.
	stopGrace = 30 * time.Second
	// scrapeTimeout bounds the reading of the metrics after the run.
	scrapeTimeout = 10 * time.Second
)

// run is the state of one Run.
type run struct {
	*Generator
	rec  *recorder
	memo *memo
	bufs sync.Pool // of *[]byte, discardBufSize: where segment bodies are read and dropped
	// lanes is what the players' lanes share; unused with Config.Transport.
	lanes laneShared

	publishes     atomic.Int64 // RTMP sessions started
	publishErrors atomic.Int64 // RTMP sessions that failed before their end
}

// Run runs the broadcasters, waits for the streams, runs the players
// along the schedule for the configured duration, and returns the report.
// It stops by itself; ctx may stop it earlier (the report then covers what
// ran). Errors are for runs that could not start.
func (g *Generator) Run(ctx context.Context) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StartTimeout+g.cfg.Duration+stopGrace)
	defer cancel()
	r := g.newRun()

	var bwg sync.WaitGroup
	bctx, stopBroadcast := context.WithCancel(ctx)
	defer func() { stopBroadcast(); bwg.Wait() }()
	for i := range g.cfg.Broadcasters {
		bwg.Go(func() { r.broadcast(bctx, g.broadcastName(i)) })
	}
	if g.cfg.Schedule.Peak() > 0 {
		if err := r.awaitStreams(ctx); err != nil {
			return nil, err
		}
	}

	before := r.scrapeAll(ctx)
	cpu0 := cpuTime()
	start := time.Now()
	r.rec = newRecorder(start, g.cfg.Duration)
	if g.cfg.BroadcastFor > 0 {
		t := time.AfterFunc(g.cfg.BroadcastFor, stopBroadcast)
		defer t.Stop()
	}
	end := r.drive(ctx, start)
	cpu := cpuTime() - cpu0
	stopBroadcast()
	bwg.Wait()
	// The servers are read even when ctx ended the run early.
	sctx, cancelScrape := context.WithTimeout(context.WithoutCancel(ctx), scrapeTimeout)
	defer cancelScrape()
	after := r.scrapeAll(sctx)
	rep := r.report(start, end, before, after)
	rep.GeneratorCPU = cpu.Seconds()
	if n := r.rec.totalReqs.Load(); n > 0 {
		rep.GeneratorCPUPerRequest = float64(cpu.Microseconds()) / float64(n)
	}
	return rep, nil
}

// newRun returns the state of a run, without its recorder.
func (g *Generator) newRun() *run {
	r := &run{Generator: g, memo: newMemo()}
	r.lanes = laneShared{
		timeout: g.cfg.RequestTimeout,
		dialer:  net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		bufs:    &r.bufs,
		scratch: make([]byte, discardScratchSize),
	}
	return r
}

// drive runs players along the schedule until the duration is over or ctx
// is done, then stops them and waits for them. It returns when it told
// them to stop.
func (r *run) drive(ctx context.Context, start time.Time) time.Time {
	type handle struct {
		p      *player
		cancel context.CancelFunc
	}
	stop := func(h handle, at time.Time) {
		h.p.stopAt.Store(int64(r.rec.since(at)))
		h.cancel()
	}
	var (
		wg      sync.WaitGroup
		players []handle
		nextID  int
		second  = -1
	)
	streams := r.streams()
	tick := time.NewTicker(controlTick)
	defer tick.Stop()
	done := time.NewTimer(r.cfg.Duration)
	defer done.Stop()
	var prog progress
loop:
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			break loop
		case <-done.C:
			break loop
		case now = <-tick.C:
		}
		elapsed := now.Sub(start)
		for want := r.cfg.Schedule.Viewers(elapsed); len(players) < want; nextID++ {
			pctx, cancel := context.WithCancel(ctx)
			id := nextID
			k := r.kindOf(id)
			dash := k == kindDASH || k == kindLLDASH
			stream := streams[id%len(streams)]
			p := &player{
				r:     r,
				id:    id,
				entry: r.entryURL(r.cfg.Targets[id%len(r.cfg.Targets)], stream, dash),
				ua:    userAgent + " player/" + strconv.Itoa(id),
				kind:  k,
				dash:  dash,
				log:   r.log.With("player", id, "stream", stream),
				start: r.rec.since(now),
			}
			wg.Go(func() { p.run(pctx) })
			players = append(players, handle{p, cancel})
		}
		for want := r.cfg.Schedule.Viewers(elapsed); len(players) > want; {
			stop(players[len(players)-1], now) // the newest leave first
			players = players[:len(players)-1]
		}
		if s := int(elapsed / time.Second); s != second {
			second = s
			r.rec.at(elapsed).viewers.Store(int64(len(players)))
			if r.cfg.Progress != nil {
				prog.line(r.cfg.Progress, r, elapsed, len(players))
			}
		}
	}
	end := time.Now()
	for _, h := range players {
		stop(h, end)
	}
	wg.Wait()
	return end
}

// broadcast publishes the clip as stream name until ctx is done,
// reconnecting after failures.
func (r *run) broadcast(ctx context.Context, name string) {
	log := r.log.With("broadcaster", name)
	target := r.cfg.RTMP + name
	if r.cfg.PublishKey != "" {
		target += "?key=" + url.QueryEscape(r.cfg.PublishKey)
	}
	for {
		r.publishes.Add(1)
		err := publisher.Publish(ctx, publisher.Config{URL: target, Clip: r.clip, Logger: log})
		if ctx.Err() != nil {
			return
		}
		r.publishErrors.Add(1)
		log.Warn("publish failed; reconnecting", "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// awaitStreams waits until every stream's first variant lists 3 segments
// (or has ended), asking the first target every 250 ms: another process
// makes the stream, and HTTP is all we can watch it by.
func (r *run) awaitStreams(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	p := &player{r: r, log: r.log, timer: time.NewTimer(time.Hour)}
	defer p.timer.Stop()
	g := r.newGetter(ctx, userAgent+" probe")
	defer g.close()
	var last error
	for _, s := range r.streams() {
		for {
			ok, err := r.streamReady(g, s)
			if ok {
				break
			}
			last = err
			if !p.sleep(ctx, 250*time.Millisecond) {
				return fmt.Errorf("loadtest: stream %s not playable within %v: %w", s, r.cfg.StartTimeout, errors.Join(last, ctx.Err()))
			}
		}
	}
	return nil
}

// streamReady reports whether stream s lists 3 segments at the first
// target. Its requests are not recorded: the recorder does not exist yet.
func (r *run) streamReady(g getter, s string) (bool, error) {
	entry, err := url.Parse(r.entryURL(r.cfg.Targets[0], s, false))
	if err != nil {
		return false, err
	}
	body, final, _, err := g.do(getRequest{base: entry, keep: true})
	if err != nil {
		return false, err
	}
	e, err := parseMultivariant(body)
	if err != nil {
		return false, err
	}
	body, _, _, err = g.do(getRequest{base: final, ref: e.variants[0].id, keep: true, buf: body})
	if err != nil {
		return false, err
	}
	l, err := parseMedia(body)
	if err != nil {
		return false, err
	}
	if len(l.durations) < 3 && !l.ended {
		return false, fmt.Errorf("%d segments listed", len(l.durations))
	}
	return true, nil
}

package loadtest

import (
	"context"
	"time"
)

// sideJob asks the side goroutine to fetch uri(t) of tracks as class c,
// one after the other, and to put their errors in errs; or, when loop is
// set, to run loop on its getter and put its error in p.sideErr (a
// low-latency player's second track, which runs on its own).
type sideJob struct {
	tracks []*track
	uri    func(*track) string
	c      class
	errs   []error
	loop   func(getter) error
}

// getAll fetches, at the same time, the object uri names for each track
// (relative to its list) and drops it, and returns each one's error,
// valid until the next call. The first track's is fetched here, the
// others' in the side goroutine on a getter of its own, one after the
// other: players have two tracks at most, video and audio. The player's
// state is updated here, once they are all done.
func (p *player) getAll(ctx context.Context, tracks []*track, uri func(*track) string, c class) []error {
	p.errs = p.errs[:0]
	for range tracks {
		p.errs = append(p.errs, nil)
	}
	if len(tracks) == 0 {
		return p.errs
	}
	sent := false
	if len(tracks) > 1 {
		p.startSide(ctx)
		select {
		case p.sideJobs <- sideJob{tracks: tracks[1:], uri: uri, c: c, errs: p.errs[1:]}:
			sent = true
		case <-ctx.Done():
			for i := range p.errs[1:] {
				p.errs[1+i] = errStopped
			}
		}
	}
	t := tracks[0]
	_, _, _, p.errs[0] = p.fetch(p.main, getRequest{base: t.url, ref: uri(t)}, c)
	if sent {
		<-p.sideDone // the side getter stops when ctx is done
	}
	p.advance(time.Now())
	return p.errs
}

// runBeside runs loop in the side goroutine, on its getter, while fn
// runs here; it returns fn's error, else loop's. stop is called when
// either returns, so that the other stops too.
func (p *player) runBeside(ctx context.Context, stop func(), loop func(getter) error, fn func() error) error {
	p.startSide(ctx)
	select {
	case p.sideJobs <- sideJob{loop: func(g getter) error { defer stop(); return loop(g) }}:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := fn()
	stop()
	<-p.sideDone
	if err == nil {
		err = p.sideErr
	}
	return err
}

// startSide starts the side goroutine unless it runs; run stops it.
func (p *player) startSide(ctx context.Context) {
	if p.sideJobs != nil {
		return
	}
	p.sideJobs, p.sideDone = make(chan sideJob), make(chan struct{}, 1)
	p.side = p.r.newGetter(ctx, p.ua)
	p.sideWG.Go(func() {
		defer p.side.close()
		for j := range p.sideJobs {
			if j.loop != nil {
				p.sideErr = j.loop(p.side)
			}
			for i, t := range j.tracks {
				_, _, _, j.errs[i] = p.fetch(p.side, getRequest{base: t.url, ref: j.uri(t)}, j.c)
			}
			p.sideDone <- struct{}{} // buffered; the player waits for it
		}
	})
}

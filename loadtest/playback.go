package loadtest

import (
	"time"

	"github.com/golivestream/live/web"
)

// StallThreshold is how long a player's buffer must stay empty for a stall:
// web.StallThreshold, the definition the watch page applies before it sends
// a stall beacon.
const StallThreshold = web.StallThreshold

// maxStallTimes bounds the stall times one player keeps for the one-minute
// figures; stalls beyond it are still counted.
const maxStallTimes = 4096

// playback is one player's simulated buffer and stall clock. Media time
// arrives with segments (when a segment is fully read) and drains in real
// time once playback has started, which is when the first segment
// arrives: the start-up wait is never a stall. A stall is the buffer
// staying empty for StallThreshold or more; one empty spell counts once
// however long it lasts. Rebuffering is every empty spell after the
// start, stalls or not: a player that keeps running dry for 1.5 s never
// stalls by this definition, and its rebuffer time and spells show it.
//
// Times are offsets from the run's start. It is a pure value: no clock,
// no locks; not safe for concurrent use.
type playback struct {
	// threshold is the stall threshold; zero means StallThreshold.
	threshold time.Duration

	started    bool
	startedAt  time.Duration // when the first segment arrived
	at         time.Duration // time of the last update
	buffered   time.Duration // media buffered at `at`
	empty      bool          // the buffer ran dry and nothing arrived since
	emptySince time.Duration // valid when empty
	counted    bool          // the current empty spell was counted as a stall

	spells     int // empty spells after the start, stalls or not
	stalls     int
	lastStall  time.Duration   // when the last stall was counted
	stallTimes []time.Duration // when each stall was counted, at most maxStallTimes
	rebuffer   time.Duration   // empty time of finished spells
}

func (p *playback) limit() time.Duration {
	if p.threshold <= 0 {
		return StallThreshold
	}
	return p.threshold
}

// arrive adds a segment of media duration d, fully read at now. It returns
// the stalls counted while draining up to now, and whether this segment
// started playback.
func (p *playback) arrive(now, d time.Duration) (stalls int, first bool) {
	if !p.started {
		p.started, p.startedAt, p.at = true, now, now
		p.buffered = max(d, 0)
		return 0, true
	}
	stalls = p.advance(now)
	if p.empty {
		p.endSpell()
		p.empty, p.counted = false, false
	}
	p.buffered += max(d, 0)
	return stalls, false
}

// advance drains the buffer up to now and returns the stalls counted on
// the way (0 or 1). Time never goes backwards: an earlier now is ignored.
func (p *playback) advance(now time.Duration) int {
	if !p.started || now <= p.at {
		return 0
	}
	elapsed := now - p.at
	p.at = now
	if !p.empty {
		if p.buffered > elapsed {
			p.buffered -= elapsed
			return 0
		}
		p.empty, p.emptySince = true, now-elapsed+p.buffered
		p.buffered = 0
	}
	if p.counted || now-p.emptySince < p.limit() {
		return 0
	}
	p.counted = true
	p.stalls++
	p.lastStall = p.emptySince + p.limit()
	if len(p.stallTimes) < maxStallTimes {
		p.stallTimes = append(p.stallTimes, p.lastStall)
	}
	return 1
}

// finish drains up to now (the end of the player) and closes a running
// empty spell, returning the stalls counted on the way.
func (p *playback) finish(now time.Duration) int {
	stalls := p.advance(now)
	if p.empty {
		p.endSpell()
		p.emptySince = p.at
	}
	return stalls
}

// endSpell accounts for the empty spell ending at p.at; one of no length
// (a segment arriving the moment the buffer ran dry) is none.
func (p *playback) endSpell() {
	if p.at > p.emptySince {
		p.rebuffer += p.at - p.emptySince
		p.spells++
	}
}

// level returns the media buffered at the last update.
func (p *playback) level() time.Duration { return p.buffered }

// rebuffered returns the empty time after the start up to the last update.
func (p *playback) rebuffered() time.Duration {
	if p.empty {
		return p.rebuffer + p.at - p.emptySince
	}
	return p.rebuffer
}

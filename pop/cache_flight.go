package pop

import (
	"context"
	"errors"
	"strconv"
)

// flight is one upstream fetch for a key before its response headers are
// in, and the requests waiting for it. When they have all left, nobody
// wants it any more and it is canceled. After its headers, the fill's
// readers decide the same (fill.detach).
type flight struct {
	// id names the flight in the shard's singleflight group: the key and a
	// sequence number, so that a request arriving after a flight was
	// abandoned starts a new one instead of joining the canceled one.
	id     string
	key    string
	client string // the address of the client whose request started it
	ctx    context.Context
	cancel context.CancelFunc
	// waiters counts the requests waiting. landed is set once the fetch
	// has its answer or failed, or was abandoned by every waiter: from
	// then on it is no longer in the shard's flights. Both guarded by the
	// shard's mu.
	waiters int
	landed  bool
}

// board joins the flight in progress for key, or starts one for client.
func (sh *shard) board(key, client string) *flight {
	if hook := sh.c.boarded; hook != nil {
		defer hook(key)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	fl := sh.flights[key]
	if fl == nil {
		sh.flightSeq++
		ctx, cancel := context.WithCancel(sh.c.ctx)
		fl = &flight{id: key + "\x00" + strconv.FormatUint(sh.flightSeq, 10), key: key, client: client, ctx: ctx, cancel: cancel}
		sh.flights[key] = fl
	}
	fl.waiters++
	return fl
}

// errFlightOver is the answer of a flight's call run again after it had
// landed: the request that ran it starts over.
var errFlightOver = errors.New("flight already over")

// landedFlight reports whether fl has landed.
func (sh *shard) landedFlight(fl *flight) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return fl.landed
}

// land marks fl as answered: requests arriving from now on find its
// object filling (startFill publishes it in the same step) or start a new
// flight.
func (sh *shard) land(fl *flight) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.landLocked(fl)
}

func (sh *shard) landLocked(fl *flight) {
	fl.landed = true
	if sh.flights[fl.key] == fl {
		delete(sh.flights, fl.key)
	}
}

// leave takes a request off fl: answered, or gone before the answer. The
// last one gone before the answer cancels the fetch.
func (sh *shard) leave(fl *flight, gone bool) {
	sh.mu.Lock()
	fl.waiters--
	abandon := gone && fl.waiters == 0 && !fl.landed
	if abandon {
		sh.landLocked(fl)
	}
	sh.mu.Unlock()
	if abandon {
		fl.cancel()
	}
}

package pop

import (
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/singleflight"
)

// flight is the one upstream fetch of a key until its response headers
// are in, run by its shard's singleflight group under the key (run), with
// what singleflight does not keep: the requests waiting for its answer,
// and a context of its own, detached from every client. When every
// waiter has left before the answer, nobody wants the fetch any more: it
// is canceled, and the next request for the key starts a new flight
// rather than joining the canceled one. After its headers, the fill's
// readers decide the same (fill.detach).
//
// A flight is its key's in the shard's flights exactly while its call is
// the key's in the shard's calls: board starts the call when it makes the
// flight, and landLocked forgets it when it takes the flight out, both
// under the shard's mu. So a request always waits on the call of the
// flight it counts itself on, and a flight that has landed never answers
// a request that came after.
type flight struct {
	sh     *shard
	key    string
	class  class
	fetch  fetchFunc
	client string // the address of the client whose request started it
	ctx    context.Context
	cancel context.CancelFunc
	// waiters counts the requests waiting for the answer. landed is set
	// once the flight has its answer or failed, or was abandoned by every
	// waiter: from then on it is not its key's any more. Both guarded by
	// sh.mu.
	waiters int
	landed  bool
}

// fly waits for key's object on the flight in progress for key, or on a
// new one that fetches it with fetch for client, and returns the
// flight's answer; or ctx's error if the request leaves first.
func (sh *shard) fly(ctx context.Context, key string, cl class, fetch fetchFunc, client string) (singleflight.Result, error) {
	fl, answer := sh.board(key, cl, fetch, client)
	select {
	case r := <-answer:
		fl.leave(false)
		return r, nil
	case <-ctx.Done():
		fl.leave(true)
		return singleflight.Result{}, ctx.Err()
	}
}

// board counts a request on key's flight, making one for client if there
// is none, and returns it with the channel of its answer.
func (sh *shard) board(key string, cl class, fetch fetchFunc, client string) (*flight, <-chan singleflight.Result) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	fl := sh.flights[key]
	if fl == nil {
		ctx, cancel := context.WithCancel(sh.c.cfg.ctx)
		fl = &flight{sh: sh, key: key, class: cl, fetch: fetch, client: client, ctx: ctx, cancel: cancel}
		sh.flights[key] = fl
	}
	fl.waiters++
	sh.c.held.Inc()
	return fl, sh.calls.DoChan(key, fl.run) // fl's call: started now if fl is new
}

// leave takes a request off fl: answered, or gone before the answer. The
// last one gone before the answer abandons fl, and cancels its fetch.
func (fl *flight) leave(gone bool) {
	sh := fl.sh
	sh.mu.Lock()
	fl.waiters--
	sh.c.held.Dec()
	abandon := gone && fl.waiters == 0 && !fl.landed
	if abandon {
		sh.landLocked(fl)
	}
	sh.mu.Unlock()
	if abandon {
		fl.cancel()
	}
}

// run is fl's call: it checks the cache again, asks the gate, fetches,
// and returns the object, filling. Every way out lands fl.
func (fl *flight) run() (any, error) {
	sh := fl.sh
	// Someone may have filled it while this request boarded.
	if _, o := sh.lookup(fl.key, time.Now(), false); o != nil {
		fl.end()
		return o, nil
	}
	if gate := sh.c.cfg.gate; gate != nil {
		if err := gate(fl.key, fl.client); err != nil {
			fl.end()
			return nil, err
		}
	}
	o, body, err := fl.fetch(fl.ctx, fl.key, fl.class)
	if err != nil {
		fl.end()
		return nil, err
	}
	if err := sh.startFill(fl, o, body); err != nil {
		return nil, err
	}
	return o, nil
}

// end lands fl with an answer that needs no fetch going on.
func (fl *flight) end() {
	fl.sh.mu.Lock()
	fl.sh.landLocked(fl)
	fl.sh.mu.Unlock()
	fl.cancel()
}

// landLocked takes fl out of its key's flights, with its call, unless it
// is out already: requests from now on find its object filling
// (startFill publishes it in the same step), or start a new flight. The
// caller holds sh.mu.
func (sh *shard) landLocked(fl *flight) {
	if fl.landed {
		return
	}
	fl.landed = true
	delete(sh.flights, fl.key)
	sh.calls.Forget(fl.key)
}

// startFill publishes o, the answer of fl, as filling and copies body
// into it; once the body is complete, o moves into the LRU (or is
// dropped). If every request waiting for fl has left meanwhile, it
// returns errAborted instead: o was canceled with fl and is not shown to
// anyone.
func (sh *shard) startFill(fl *flight, o *object, body io.ReadCloser) error {
	sh.mu.Lock()
	if fl.landed { // abandoned (leave)
		sh.mu.Unlock()
		body.Close()
		return errAborted
	}
	sh.filling[o.key] = o
	sh.landLocked(fl)
	sh.mu.Unlock()
	started := sh.c.cfg.crew.Go(func() {
		defer fl.cancel()
		o.body.readFrom(body, o.noteHint)
		body.Close()
		if sh.complete(o) && sh.c.cfg.onComplete != nil {
			sh.c.cfg.onComplete(o)
		}
	})
	if !started { // the server is stopping: the waiters get an error
		body.Close()
		o.body.Finish(errStopping)
		sh.complete(o)
		fl.cancel()
	}
	return nil
}

// errStopping fails the fills the server could not start because it is
// stopping; like an abandoned fill, it is no upstream error.
var errStopping = fmt.Errorf("%w: the PoP is stopping", errAborted)

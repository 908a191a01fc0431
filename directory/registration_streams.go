package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/internal/layout"
)

// maxOps is the most operations one transaction carries: etcd refuses
// more than --max-txn-ops, 128 by default.
const maxOps = 99

// streamEntry is a stream the origin lists, as set locally and as
// written to etcd.
type streamEntry struct {
	st      StreamState // Updated is zero here
	created time.Time   // when its epoch was agreed or first set
	removed bool        // RemoveStream was called; the key is still to delete
	urgent  bool        // a change other than NewestSegment is unwritten
	version uint64      // counts local changes
	written uint64      // the version etcd holds under the current lease; 0 for none
	// writtenAt is when written was written.
	writtenAt time.Time
	// ensured is the epoch whose record is known to be in etcd, "" when
	// it is to be checked.
	ensured string
}

// SetStream lists the stream name with its state, or changes it. A
// change of the epoch, the role or the fingerprint is written at once;
// one of NewestSegment alone at most every SegmentInterval, with the
// load. A stream's epoch, once set, is only changed by removing the
// stream first. SetStream never waits on etcd.
func (r *Registration) SetStream(name string, st StreamState) error {
	if !layout.ValidStream(name) {
		return fmt.Errorf("directory: stream name %q: want [A-Za-z0-9_-]{1,64}", name)
	}
	switch st.Role {
	case RolePrimary, RoleBackup, RoleStandby, "":
	default:
		return fmt.Errorf("directory: stream %s: role %q: want %q, %q or %q", name, st.Role, RolePrimary, RoleBackup, RoleStandby)
	}
	if st.Epoch != "" && !layout.ValidEpoch(st.Epoch) {
		return fmt.Errorf("directory: stream %s: epoch %q is not one", name, st.Epoch)
	}
	st.Updated = time.Time{}
	r.mu.Lock()
	e := r.streams[name]
	if e == nil {
		e = &streamEntry{}
		r.streams[name] = e
	}
	if !e.removed && e.version > 0 && e.st == st {
		r.mu.Unlock()
		return nil
	}
	urgent := e.removed || e.version == 0 || e.st.Epoch != st.Epoch || e.st.Role != st.Role || e.st.Fingerprint != st.Fingerprint
	if e.removed || e.st.Epoch != st.Epoch {
		e.created, e.ensured = time.Now(), ""
	}
	e.st, e.removed = st, false
	e.version++
	e.urgent = e.urgent || urgent
	r.mu.Unlock()
	if urgent {
		r.wake()
	}
	return nil
}

// RemoveStream takes the stream name off the origin's list, at once, and
// gives up its epoch (see AgreeEpoch). It never waits on etcd.
func (r *Registration) RemoveStream(name string) {
	r.mu.Lock()
	e := r.streams[name]
	if e == nil || e.removed {
		r.mu.Unlock()
		return
	}
	e.removed, e.urgent = true, true
	e.version++
	r.mu.Unlock()
	r.wake()
}

// forgetEnsured marks the epoch record of stream name (of every stream
// when name is "") as to be checked again, and reports whether the
// origin serves it.
func (r *Registration) forgetEnsured(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		for _, e := range r.streams {
			e.ensured = ""
		}
		return true
	}
	e := r.streams[name]
	if e == nil || e.removed || e.st.Epoch == "" || e.st.Fingerprint == "" || e.st.Role == RoleStandby {
		return false
	}
	e.ensured = ""
	return true
}

// measure returns the load to publish.
func (r *Registration) measure() Load {
	if r.cfg.Load != nil {
		return r.cfg.Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.streams {
		if !e.removed && e.st.Role != "" {
			n++
		}
	}
	return Load{Streams: n}
}

// Kinds of a planned operation.
const (
	opOrigin = iota
	opStream
	opEnsure
)

// plannedOp is one operation of a write, and what it writes.
type plannedOp struct {
	op      clientv3.Op
	kind    int
	name    string
	version uint64
	epoch   string
}

// write writes under lease what changed locally: urgent changes always;
// when periodic also the load, if it changed, and the stream records due
// for their newest segment. It returns an error wrapping errLeaseLost
// when etcd no longer knows the lease.
func (r *Registration) write(ctx context.Context, lease clientv3.LeaseID, periodic bool) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var load Load
	if periodic {
		load = r.measure()
	}
	now := time.Now()
	r.mu.Lock()
	ops, removals := r.planLocked(lease, now, periodic, load)
	r.mu.Unlock()
	for len(ops) > 0 {
		n := min(len(ops), maxOps)
		if err := r.commit(ctx, lease, ops[:n], now, load); err != nil {
			return err
		}
		ops = ops[n:]
	}
	for _, p := range removals {
		if err := r.remove(ctx, lease, p); err != nil {
			return err
		}
	}
	return nil
}

// planLocked lists the operations of a write: the puts, batched, then
// the removals, one transaction each.
func (r *Registration) planLocked(lease clientv3.LeaseID, now time.Time, periodic bool, load Load) (ops, removals []plannedOp) {
	if r.loadAt.IsZero() || periodic && load != r.load {
		if !periodic {
			load = r.load
		}
		o := Origin{ID: r.cfg.ID, Zone: r.cfg.Zone, PublicURL: r.cfg.PublicURL, RTMPURL: r.cfg.RTMPURL, Load: load, Updated: now}
		ops = append(ops, plannedOp{op: clientv3.OpPut(r.keys.originKey(r.cfg.ID), encode(o), clientv3.WithLease(lease)), kind: opOrigin})
	}
	names := make([]string, 0, len(r.streams))
	for name := range r.streams {
		names = append(names, name)
	}
	slices.Sort(names) // the same order each time: tests and logs read better
	for _, name := range names {
		e := r.streams[name]
		if e.removed {
			removals = append(removals, plannedOp{name: name, version: e.version})
			continue
		}
		if e.version != e.written && (e.urgent || periodic && now.Sub(e.writtenAt) >= r.cfg.SegmentInterval) {
			st := e.st
			st.Updated = now
			ops = append(ops, plannedOp{op: clientv3.OpPut(r.keys.streamKey(name, r.cfg.ID), encode(st), clientv3.WithLease(lease)), kind: opStream, name: name, version: e.version})
		}
		// A standby's epoch gets no record: the stream's is the others'.
		if e.st.Epoch != "" && e.st.Fingerprint != "" && e.st.Role != RoleStandby && e.ensured != e.st.Epoch {
			key := r.keys.epochKey(name)
			rec := EpochRecord{Epoch: e.st.Epoch, Fingerprint: e.st.Fingerprint, Created: e.created, Holder: r.cfg.ID}
			ensure := clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
				[]clientv3.Op{clientv3.OpPut(key, encode(rec), clientv3.WithLease(lease))},
				[]clientv3.Op{clientv3.OpGet(key)})
			ops = append(ops, plannedOp{op: ensure, kind: opEnsure, name: name, epoch: e.st.Epoch})
		}
	}
	return ops, removals
}

// commit runs one batch of planned puts and notes what they wrote.
func (r *Registration) commit(ctx context.Context, lease clientv3.LeaseID, batch []plannedOp, now time.Time, load Load) error {
	ops := make([]clientv3.Op, len(batch))
	for i, p := range batch {
		ops[i] = p.op
	}
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	resp, err := r.cfg.Client.Txn(rctx).Then(ops...).Commit()
	r.metrics.requests.Inc()
	if err != nil {
		return writeError(err)
	}
	var reclaim []*reclaimOp
	r.mu.Lock()
	r.lastRev = resp.Header.Revision
	for i, p := range batch {
		switch p.kind {
		case opOrigin:
			r.load, r.loadAt = load, now
		case opStream:
			if e := r.streams[p.name]; e != nil && e.version == p.version {
				e.written, e.urgent = p.version, false
			}
			if e := r.streams[p.name]; e != nil {
				e.writtenAt = now
			}
		case opEnsure:
			if rc := r.ensuredLocked(lease, p, resp.Responses[i].GetResponseTxn()); rc != nil {
				reclaim = append(reclaim, rc)
			}
		}
	}
	r.mu.Unlock()
	for _, rc := range reclaim {
		r.reclaim(ctx, lease, rc)
	}
	return nil
}

// remove deletes a removed stream's key, and the stream's epoch record
// when it is under lease (then the other origins that serve the stream
// put it back under theirs).
func (r *Registration) remove(ctx context.Context, lease clientv3.LeaseID, p plannedOp) error {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	streamKey, epochKey := r.keys.streamKey(p.name, r.cfg.ID), r.keys.epochKey(p.name)
	_, err := r.cfg.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.LeaseValue(epochKey), "=", lease)).
		Then(clientv3.OpDelete(streamKey), clientv3.OpDelete(epochKey)).
		Else(clientv3.OpDelete(streamKey)).
		Commit()
	r.metrics.requests.Inc()
	if err != nil {
		return writeError(err)
	}
	r.mu.Lock()
	if e := r.streams[p.name]; e != nil && e.removed && e.version == p.version {
		delete(r.streams, p.name)
	}
	r.mu.Unlock()
	return nil
}

// writeError wraps a failed write's error, with errLeaseLost when the
// lease is gone.
func writeError(err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("write: %w: %w", errLeaseLost, err)
	}
	return fmt.Errorf("write: %w", err)
}

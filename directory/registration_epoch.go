package directory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/internal/layout"
)

// errRaced says that the keys of a stream changed between the reading
// and the writing of an agreement: it is tried again.
var errRaced = errors.New("raced")

// Agreement is what AgreeEpoch agreed on.
type Agreement struct {
	// Epoch is the epoch the origin is to serve the stream with.
	Epoch string
	// Adopted says that Epoch is the one other origins serve the stream
	// with: this origin joins them (dual hot ingest) and makes the same
	// files.
	Adopted bool
	// Standby says that other origins serve the stream since longer than
	// JoinWindow: this origin, come too late to make their files (its
	// numbering starts at 0, theirs is well on), serves an epoch of its
	// own, the one proposed, which no route pairs with theirs; PoPs
	// turn to it once they are gone.
	Standby bool
}

// AgreeEpoch agrees with the other origins on the epoch of stream name,
// whose setup (renditions, codecs) fingerprint identifies, and lists the
// stream on this origin, without a role until SetStream gives it one.
//
// If no origin serves the stream, the proposed epoch becomes the
// stream's. If some do with the same fingerprint, and the stream began
// within JoinWindow (an encoder pushing to two origins connects to both
// before it sends media), their epoch is adopted. If it began earlier,
// the origin is on standby (see Agreement). A record this origin left
// itself, with no other origin serving the stream, is an earlier
// instance of the stream on this origin (a restart, or a publisher
// back after its stream ended): it is replaced by the proposed epoch, as
// a lone origin starts a new epoch, because the new instance's numbers
// would name other media under the same URLs. If other origins serve the
// stream with another fingerprint, the error wraps ErrSetupMismatch: the
// newcomer is refused rather than let replace the epoch, which would
// switch the players of the origin still serving the old setup to
// another epoch, or let a second, misconfigured encoder take a live
// stream over; once the old session ends on every origin (RemoveStream,
// or its origin's lease), a new setup gets a new epoch. An epoch lasts as
// long as some origin that agreed on it lists the stream: call
// RemoveStream when the ingest ends or fails.
//
// AgreeEpoch waits until the origin is registered, or ctx is done: an
// error that wraps neither ErrSetupMismatch nor a cancelled caller means
// that etcd could not be asked, and the caller may go on with its own
// epoch (fail static), at the risk of two.
func (r *Registration) AgreeEpoch(ctx context.Context, name, fingerprint, proposed string) (Agreement, error) {
	if !layout.ValidStream(name) {
		return Agreement{}, fmt.Errorf("directory: stream name %q: want [A-Za-z0-9_-]{1,64}", name)
	}
	if fingerprint == "" {
		return Agreement{}, fmt.Errorf("directory: stream %s: fingerprint is required", name)
	}
	if !layout.ValidEpoch(proposed) {
		return Agreement{}, fmt.Errorf("directory: stream %s: epoch %q is not one", name, proposed)
	}
	var failed clientv3.LeaseID
	for {
		lease, err := r.awaitLease(ctx, failed)
		if err != nil {
			return Agreement{}, fmt.Errorf("agree on the epoch of %s: %w", name, err)
		}
		a, err := r.agree(ctx, lease, name, fingerprint, proposed)
		switch {
		case errors.Is(err, errLeaseLost):
			failed = lease
		case errors.Is(err, errRaced):
		case err != nil:
			return Agreement{}, fmt.Errorf("agree on the epoch of %s: %w", name, err)
		default:
			return a, nil
		}
	}
}

// awaitLease returns the lease of the registered origin, other than
// not.
func (r *Registration) awaitLease(ctx context.Context, not clientv3.LeaseID) (clientv3.LeaseID, error) {
	for {
		st, changed := r.Status()
		if st.Registered && st.Lease != not {
			return st.Lease, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, fmt.Errorf("not registered: %w", ctx.Err())
		}
	}
}

// agree reads the stream's epoch record and stream keys, decides, and
// writes the decision if none of them changed meanwhile (else errRaced).
func (r *Registration) agree(ctx context.Context, lease clientv3.LeaseID, name, fingerprint, proposed string) (Agreement, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	epochKey, prefix := r.keys.epochKey(name), r.keys.streamPrefix(name)
	get, err := r.cfg.Client.Txn(rctx).Then(clientv3.OpGet(epochKey), clientv3.OpGet(prefix, clientv3.WithPrefix())).Commit()
	r.metrics.requests.Inc()
	if err != nil {
		return Agreement{}, fmt.Errorf("read: %w", err)
	}
	rev := get.Header.Revision
	now := time.Now()
	agreed, found, others := r.liveEpoch(get.Responses[0].GetResponseRange(), get.Responses[1].GetResponseRange())
	if found == foundRecord && agreed.Holder == r.cfg.ID && others == 0 {
		found = foundNone // this origin's earlier instance: not to be made again
	}
	var a Agreement
	switch {
	case found == foundNone:
		agreed = EpochRecord{Epoch: proposed, Fingerprint: fingerprint, Created: now}
		a = Agreement{Epoch: proposed}
	case agreed.Fingerprint != fingerprint:
		return Agreement{}, fmt.Errorf("%w: epoch %s is live for setup %q, not %q", ErrSetupMismatch, agreed.Epoch, agreed.Fingerprint, fingerprint)
	case found == foundStreams || now.Sub(agreed.Created) > r.cfg.JoinWindow:
		a = Agreement{Epoch: proposed, Standby: true}
		r.log.Info("directory: other origins serve the stream since before this publisher came: serving an epoch of its own on standby",
			"stream", name, "epoch", proposed, "their_epoch", agreed.Epoch, "since", agreed.Created)
	default:
		a = Agreement{Epoch: agreed.Epoch, Adopted: true}
	}

	st := StreamState{Epoch: a.Epoch, Fingerprint: fingerprint}
	r.mu.Lock()
	if e := r.streams[name]; e != nil && !e.removed && e.st.Epoch == a.Epoch {
		st.Role, st.NewestSegment = e.st.Role, e.st.NewestSegment
	}
	r.mu.Unlock()
	written := st
	written.Updated = now
	ops := []clientv3.Op{clientv3.OpPut(r.keys.streamKey(name, r.cfg.ID), encode(written), clientv3.WithLease(lease))}
	if found == foundNone {
		agreed.Holder = r.cfg.ID
		ops = append(ops, clientv3.OpPut(epochKey, encode(agreed), clientv3.WithLease(lease)))
	}
	resp, err := r.cfg.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(epochKey), "<", rev+1),
			clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", rev+1)).
		Then(ops...).
		Commit()
	r.metrics.requests.Inc()
	if err != nil {
		return Agreement{}, writeError(err)
	}
	if !resp.Succeeded {
		return Agreement{}, errRaced
	}

	r.mu.Lock()
	e := r.streams[name]
	if e == nil {
		e = &streamEntry{}
		r.streams[name] = e
	}
	e.st, e.created, e.removed, e.urgent = st, agreed.Created, false, false
	e.version++
	// A standby's epoch has no record while the stream's is another.
	e.written, e.writtenAt, e.ensured = e.version, now, a.Epoch
	r.lastRev = resp.Header.Revision
	r.mu.Unlock()
	return a, nil
}

// Where liveEpoch found a stream's epoch.
const (
	foundNone    = iota
	foundRecord  // in epochs/{name}
	foundStreams // in the stream key of another origin, the record gone
)

// liveEpoch returns the live epoch of a stream from its epoch record,
// else from the oldest stream key of another origin that has one, and
// the number of other origins whose stream keys list that epoch.
func (r *Registration) liveEpoch(record, streams *etcdpb.RangeResponse) (rec EpochRecord, found, others int) {
	kvs := slices.Clone(streams.Kvs)
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
	var theirs []StreamState // of the other origins, oldest first
	for _, kv := range kvs {
		kind, _, id := r.keys.parse(string(kv.Key))
		if kind != keyStream || id == r.cfg.ID {
			continue
		}
		if st, err := decode[StreamState](kv.Value); err == nil && st.Epoch != "" {
			theirs = append(theirs, st)
		}
	}
	found = foundNone
	if len(record.Kvs) == 1 {
		if rc, err := decode[EpochRecord](record.Kvs[0].Value); err == nil {
			rec, found = rc, foundRecord
		}
	}
	if found == foundNone && len(theirs) > 0 {
		rec, found = EpochRecord{Epoch: theirs[0].Epoch, Fingerprint: theirs[0].Fingerprint, Created: theirs[0].Updated}, foundStreams
	}
	for _, st := range theirs {
		if found != foundNone && st.Epoch == rec.Epoch {
			others++
		}
	}
	return rec, found, others
}

// reclaimOp is an epoch record of this origin under a lease it lost,
// to put under the current one.
type reclaimOp struct {
	key    string
	value  []byte
	modRev int64
}

// ensuredLocked notes the outcome of an ensure operation of a write: the
// record was put, or it was there. A record with another epoch is a
// conflict, logged; one of this origin's old leases is to reclaim.
func (r *Registration) ensuredLocked(lease clientv3.LeaseID, p plannedOp, resp *etcdpb.TxnResponse) *reclaimOp {
	e := r.streams[p.name]
	if e == nil || e.removed || e.st.Epoch != p.epoch {
		return nil
	}
	e.ensured = p.epoch
	if resp == nil || resp.Succeeded || len(resp.Responses) == 0 {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) != 1 {
		return nil
	}
	kv := kvs[0]
	rec, err := decode[EpochRecord](kv.Value)
	if err != nil || rec.Epoch != p.epoch {
		r.metrics.epochConflicts.Inc()
		r.log.Warn("directory: the stream's epoch record names another epoch", "stream", p.name, "epoch", p.epoch, "record", string(kv.Value))
		return nil
	}
	if clientv3.LeaseID(kv.Lease) != lease && slices.Contains(r.oldLeases, clientv3.LeaseID(kv.Lease)) {
		return &reclaimOp{key: string(kv.Key), value: kv.Value, modRev: kv.ModRevision}
	}
	return nil
}

// reclaim puts an epoch record of this origin's under its current lease,
// unless it changed meanwhile. A failure is harmless: the record goes
// with the old lease, and the watch on epochs/ puts it back.
func (r *Registration) reclaim(ctx context.Context, lease clientv3.LeaseID, rc *reclaimOp) {
	rctx, cancel := r.requestContext(ctx)
	defer cancel()
	_, err := r.cfg.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(rc.key), "=", rc.modRev)).
		Then(clientv3.OpPut(rc.key, string(rc.value), clientv3.WithLease(lease))).
		Commit()
	r.metrics.requests.Inc()
	if err != nil {
		r.log.Info("directory: epoch record left under the old lease", "key", rc.key, "error", err)
	}
}

// watchEpochs watches the deletions of epoch records from the last
// write on, so that the origin puts back those of streams it serves.
func (r *Registration) watchEpochs(ctx context.Context) clientv3.WatchChan {
	r.mu.Lock()
	rev := r.lastRev
	r.mu.Unlock()
	r.metrics.requests.Inc()
	return r.cfg.Client.Watch(ctx, r.keys.epochPrefix(), clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithRev(rev+1))
}

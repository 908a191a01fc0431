package directory

import (
	"cmp"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Route is how a stream is served.
type Route struct {
	// Epoch is the epoch the primary serves.
	Epoch string
	// Primary is the origin to fetch the stream from; Backup, the one to
	// turn to when the primary fails, zero when there is none.
	Primary, Backup Origin
}

// shards is the number of maps a snapshot's routes are split over: a
// change copies only the shards of the streams it changes.
const shards = 64

// routeRef is a route, with its origins as indices into the snapshot's
// origins (backup -1 for none).
type routeRef struct {
	epoch           string
	primary, backup int32
}

// Snapshot is the directory as a View saw it at one revision. It is
// immutable: safe for concurrent use, and its lookups take no lock and
// allocate nothing.
type Snapshot struct {
	rev     int64
	seed    maphash.Seed
	origins []Origin // by ID
	routes  *[shards]map[string]routeRef
	streams int
	// failovers counts the routes whose backup became their primary,
	// since the View began.
	failovers int64
	changed   chan struct{}
}

func emptySnapshot(seed maphash.Seed) *Snapshot {
	return &Snapshot{seed: seed, routes: new([shards]map[string]routeRef), changed: make(chan struct{})}
}

// shard returns the shard of stream's route.
func (s *Snapshot) shard(stream string) int {
	return int(maphash.String(s.seed, stream) % shards)
}

// Revision is the etcd revision the snapshot reflects; 0 before the
// directory was loaded.
func (s *Snapshot) Revision() int64 { return s.rev }

// Lookup returns the origins serving stream: ok is false when none
// does. The primary is the origin listing the stream as primary, the
// backup the one listing it as backup; when the primary's origin is gone
// (its lease expired), the backup is returned as primary and backup is
// zero. Of two origins with one role, the one that listed the stream
// first comes first. The backup serves the primary's epoch: an origin on
// standby (RoleStandby, another epoch) comes only when no other is left.
// Origins that agreed on the epoch but serve with no role yet are passed
// over.
func (s *Snapshot) Lookup(stream string) (primary, backup Origin, ok bool) {
	r, ok := s.Route(stream)
	return r.Primary, r.Backup, ok
}

// Route returns how stream is served, as Lookup does, with its epoch.
func (s *Snapshot) Route(stream string) (Route, bool) {
	r, ok := s.routes[s.shard(stream)][stream]
	if !ok {
		return Route{}, false
	}
	route := Route{Epoch: r.epoch, Primary: s.origins[r.primary]}
	if r.backup >= 0 {
		route.Backup = s.origins[r.backup]
	}
	return route, true
}

// Streams is the number of streams some origin serves.
func (s *Snapshot) Streams() int { return s.streams }

// Origins returns the live origins, by ID, in a new slice.
func (s *Snapshot) Origins() []Origin { return slices.Clone(s.origins) }

// Failovers counts the streams whose backup became their primary (its
// primary's origin gone, or no longer listing the stream) since the View
// began: the switches PoPs made.
func (s *Snapshot) Failovers() int64 { return s.failovers }

// failedOver reports whether a route went from old, in prev, to r, in s,
// by its backup taking over.
func failedOver(prev *Snapshot, old routeRef, s *Snapshot, r routeRef) bool {
	if old.backup < 0 {
		return false
	}
	now := s.origins[r.primary].ID
	return now == prev.origins[old.backup].ID && now != prev.origins[old.primary].ID
}

// Changed returns a channel closed when a newer snapshot answers some
// lookup differently (other than in loads and segments, which change
// all the time): a PoP selects on it to switch to a backup at once.
// Take the channel before looking up, so that no change is missed.
func (s *Snapshot) Changed() <-chan struct{} { return s.changed }

// streamRec is one origin's record of one stream.
type streamRec struct {
	st        StreamState
	createRev int64
	// lease is the lease the record was written under (0: none).
	lease int64
}

// model is the directory as a View's Run goroutine keeps it, mutable;
// snapshot makes immutable copies of it, sharing what did not change.
// Not safe for concurrent use.
type model struct {
	keys    schema
	log     *slog.Logger
	seed    maphash.Seed
	origins map[string]Origin
	// leases are the leases of the origins' records, by ID: a stream
	// record under another lease than its origin's was left by an
	// earlier process of that origin (killed and started again before
	// its lease expired), and is passed over.
	leases map[string]int64
	// serving and primaries count, by origin ID, the stream records
	// with a role and those with the primary's.
	serving, primaries map[string]int
	streams            map[string]map[string]streamRec // by name, then origin ID

	// What changed since the last snapshot: the streams whose routes
	// are to compute again, whether an origin's record or counts
	// changed, whether an origin came, went or moved (then every route
	// is to compute again).
	dirty          map[string]struct{}
	originsChanged bool
	originsMoved   bool
}

func newModel(keys schema, log *slog.Logger, seed maphash.Seed) *model {
	return &model{
		keys: keys, log: log, seed: seed,
		origins: map[string]Origin{}, leases: map[string]int64{}, serving: map[string]int{}, primaries: map[string]int{},
		streams: map[string]map[string]streamRec{}, dirty: map[string]struct{}{},
		originsChanged: true, originsMoved: true, // a snapshot of it replaces everything
	}
}

// changedSince reports whether m changed since the last snapshot.
func (m *model) changedSince() bool {
	return m.originsChanged || m.originsMoved || len(m.dirty) > 0
}

// apply puts or deletes one key. Records that do not decode are logged
// and ignored.
func (m *model) apply(kv *mvccpb.KeyValue, deleted bool) {
	kind, name, id := m.keys.parse(string(kv.Key))
	switch kind {
	case keyOrigin:
		old, had := m.origins[id]
		if deleted {
			delete(m.origins, id)
			delete(m.leases, id)
			m.originsChanged, m.originsMoved = true, m.originsMoved || had
			return
		}
		o, err := decode[Origin](kv.Value)
		if err != nil || o.ID != id {
			m.log.Warn("directory view: origin record ignored", "key", string(kv.Key), "error", err)
			return
		}
		m.origins[id] = o
		m.originsChanged = true
		m.originsMoved = m.originsMoved || !had || old.Zone != o.Zone || old.PublicURL != o.PublicURL || old.RTMPURL != o.RTMPURL ||
			m.leases[id] != kv.Lease // another process of the origin: its routes change
		m.leases[id] = kv.Lease
	case keyStream:
		recs := m.streams[name]
		if old, had := recs[id]; had {
			m.count(id, old.st.Role, -1)
		}
		m.dirty[name] = struct{}{}
		if deleted {
			delete(recs, id)
			if len(recs) == 0 {
				delete(m.streams, name)
			}
			return
		}
		st, err := decode[StreamState](kv.Value)
		if err != nil {
			delete(recs, id)
			m.log.Warn("directory view: stream record ignored", "key", string(kv.Key), "error", err)
			return
		}
		if recs == nil {
			recs = map[string]streamRec{}
			m.streams[name] = recs
		}
		recs[id] = streamRec{st: st, createRev: kv.CreateRevision, lease: kv.Lease}
		m.count(id, st.Role, 1)
	}
	// Epoch records and unknown keys are not the view's.
}

// count adds n to the counts of origin id for a record of role.
func (m *model) count(id string, role Role, n int) {
	if role == "" {
		return
	}
	m.serving[id] += n
	if role == RolePrimary {
		m.primaries[id] += n
	}
	m.originsChanged = true
}

// roleRank orders the roles in a route.
func roleRank(r Role) int {
	switch r {
	case RolePrimary:
		return 0
	case RoleBackup:
		return 1
	default:
		return 2
	}
}

// candidate is an origin serving a stream.
type candidate struct {
	index int32
	id    string
	rec   streamRec
}

// route computes the route of stream name, with index giving the
// origins' indices.
func (m *model) route(name string, index map[string]int32, cands []candidate) (routeRef, []candidate, bool) {
	cands = cands[:0]
	for id, rec := range m.streams[name] {
		if i, ok := index[id]; ok && rec.st.Role != "" && m.current(id, rec) {
			cands = append(cands, candidate{i, id, rec})
		}
	}
	if len(cands) == 0 {
		return routeRef{}, cands, false
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(roleRank(a.rec.st.Role), roleRank(b.rec.st.Role)),
			cmp.Compare(a.rec.createRev, b.rec.createRev), cmp.Compare(a.id, b.id))
	})
	r := routeRef{epoch: cands[0].rec.st.Epoch, primary: cands[0].index, backup: -1}
	for _, c := range cands[1:] {
		if c.rec.st.Epoch == r.epoch { // another epoch's files have other URLs
			r.backup = c.index
			break
		}
	}
	return r, cands, true
}

// current reports whether rec, a stream record of origin id, was written
// by the origin's present process: under the lease of its origin record.
// Records written without a lease are.
func (m *model) current(id string, rec streamRec) bool {
	l := m.leases[id]
	return rec.lease == 0 || l == 0 || rec.lease == l
}

// snapshot returns an immutable copy of m at revision rev, sharing with
// prev what did not change; its Changed channel is prev's unless some
// route changed.
func (m *model) snapshot(rev int64, prev *Snapshot) *Snapshot {
	s := &Snapshot{rev: rev, seed: m.seed, origins: prev.origins, routes: prev.routes, streams: prev.streams, failovers: prev.failovers, changed: prev.changed}
	if m.originsChanged {
		s.origins = make([]Origin, 0, len(m.origins))
		for id, o := range m.origins {
			o.Serving, o.Primaries = m.serving[id], m.primaries[id]
			s.origins = append(s.origins, o)
		}
		slices.SortFunc(s.origins, func(a, b Origin) int { return cmp.Compare(a.ID, b.ID) })
	}
	changed := false
	if m.originsMoved || len(m.dirty) > 0 {
		index := make(map[string]int32, len(s.origins))
		for i, o := range s.origins {
			index[o.ID] = int32(i)
		}
		routes := *prev.routes
		var cands []candidate
		if m.originsMoved { // every route, in new maps
			changed = true
			routes = [shards]map[string]routeRef{}
			s.streams = 0
			for name := range m.streams {
				var r routeRef
				var ok bool
				if r, cands, ok = m.route(name, index, cands); ok {
					i := s.shard(name)
					if routes[i] == nil {
						routes[i] = map[string]routeRef{}
					}
					routes[i][name] = r
					s.streams++
					if old, had := prev.routes[i][name]; had && failedOver(prev, old, s, r) {
						s.failovers++
					}
				}
			}
		} else { // the dirty routes, in copies of their shards
			var copied [shards]bool
			for name := range m.dirty {
				i := s.shard(name)
				if !copied[i] {
					routes[i], copied[i] = maps.Clone(routes[i]), true
					if routes[i] == nil {
						routes[i] = map[string]routeRef{}
					}
				}
				old, had := routes[i][name]
				var r routeRef
				var ok bool
				r, cands, ok = m.route(name, index, cands)
				switch {
				case ok:
					routes[i][name] = r
					if had && failedOver(prev, old, s, r) {
						s.failovers++
					}
				case had:
					delete(routes[i], name)
				}
				if ok != had || r != old {
					changed = true
					if !had {
						s.streams++
					} else if !ok {
						s.streams--
					}
				}
			}
		}
		s.routes = &routes
	}
	if changed {
		s.changed = make(chan struct{})
	}
	clear(m.dirty)
	m.originsChanged, m.originsMoved = false, false
	return s
}

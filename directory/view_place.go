package directory

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Placement is where a stream is published.
type Placement struct {
	// Primary and Backup are the two origins; Backup is zero when only
	// one origin can take streams.
	Primary, Backup Origin
	// Live says that the stream is live already, on these origins.
	Live bool
}

// heldPlacement is a placement no origin has taken up yet.
type heldPlacement struct {
	primary, backup string
	until           time.Time
}

// Place returns where stream is to be published: on the origins serving
// it if it is live (Live is true); else on two origins chosen by Place
// from the live ones, counting the placements held (see PlacementHold)
// as streams of theirs. A placement is held until the stream shows up in
// the directory or PlacementHold passes, and asking again for the same
// stream meanwhile returns it. When the view is not current, only live
// streams are answered, and others get ErrStale: no new placements while
// etcd cannot be reached.
func (v *View) Place(stream string) (Placement, error) {
	snap := v.Snapshot()
	if r, ok := snap.Route(stream); ok {
		return Placement{Primary: r.Primary, Backup: r.Backup, Live: true}, nil
	}
	if h, _ := v.Health(); !h.Current {
		return Placement{}, fmt.Errorf("place %s: %w", stream, ErrStale)
	}
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, h := range v.held {
		if _, live := snap.Route(name); live || now.After(h.until) {
			delete(v.held, name)
		}
	}
	if h, ok := v.held[stream]; ok {
		p, pok := findOrigin(snap.origins, h.primary)
		b, bok := findOrigin(snap.origins, h.backup)
		if pok && (bok || h.backup == "") {
			return Placement{Primary: p, Backup: b}, nil
		}
		delete(v.held, stream) // an origin of it is gone: place anew
	}
	origins := snap.Origins()
	byID := make(map[string]*Origin, len(origins))
	for i := range origins {
		byID[origins[i].ID] = &origins[i]
	}
	for _, h := range v.held {
		if p := byID[h.primary]; p != nil {
			p.Serving++
			p.Load.Streams++
			p.Primaries++
		}
		if b := byID[h.backup]; b != nil {
			b.Serving++
			b.Load.Streams++
		}
	}
	primary, backup, err := Place(origins)
	if err != nil {
		return Placement{}, fmt.Errorf("place %s: %w", stream, err)
	}
	v.held[stream] = heldPlacement{primary: primary.ID, backup: backup.ID, until: now.Add(v.cfg.PlacementHold)}
	// The origins as the snapshot has them, without the held counts.
	p, _ := findOrigin(snap.origins, primary.ID)
	b, _ := findOrigin(snap.origins, backup.ID)
	return Placement{Primary: p, Backup: b}, nil
}

// findOrigin returns the origin id of origins, which are sorted by ID.
func findOrigin(origins []Origin, id string) (Origin, bool) {
	i, ok := slices.BinarySearchFunc(origins, id, func(o Origin, id string) int { return cmp.Compare(o.ID, id) })
	if !ok || id == "" {
		return Origin{}, false
	}
	return origins[i], true
}

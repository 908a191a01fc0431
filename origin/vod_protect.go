package origin

// The DVR window, VODs and clips of encrypted streams (issues #24, #25):
// their manifests say which key each segment needs, as the live ones do
// (protect_manifest.go), and key delivery gives the keys of archived
// epochs too.
//
// An encrypted epoch's archive record (archive.Encryption) names its key
// period rule and the KID of each key period, never a key. From it a
// VOD's or clip's presentation knows each segment's key (presKeys); a
// DVR window knows them from its live instance. Their HLS playlists
// carry the live EXT-X-KEY tags, a new one at each key change, with key
// URIs leading to the stream's key delivery, /live/{stream}/keys/{kid},
// from wherever the playlist is; their MPDs have a Period per key
// period, each with its key as cenc:default_KID, as live.
//
// A KID that key delivery does not know (an origin restarted, or one
// that never saw the stream) is looked for in the records of the
// stream's archived epochs; the key of the period the record names it
// for is asked of the key provider again (protection.Store derives it
// again from its secret; a CPIX key server is asked again), and given
// only if it has that KID: an origin given another secret gives none.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/protection"
)

// presKeys are the keys of an encrypted presentation: its instance's key
// period rule (keyPeriodOf) and the key of each key period, by number,
// of which the manifests need the KID and the DRM signalling only. It is
// never modified once made.
type presKeys struct {
	keyPeriod, segment time.Duration
	byPeriod           map[uint64]protection.Key
	// systems signals the DRM systems of the keys besides ClearKey.
	systems bool
}

// archivedKeys returns the keys an epoch's record names: with the DRM
// signalling it recorded, which is what the live manifests carried.
func archivedKeys(enc *archive.Encryption) *presKeys {
	pk := &presKeys{keyPeriod: enc.KeyPeriod, segment: enc.SegmentDuration, byPeriod: map[uint64]protection.Key{}, systems: true}
	for _, k := range enc.Keys {
		pk.byPeriod[k.Number] = protection.Key{KID: k.KID, Systems: k.Systems}
	}
	return pk
}

// periodOf returns the key period of a segment starting at start ticks
// of timescale ts.
func (pk *presKeys) periodOf(start int64, ts uint32) uint64 {
	return keyPeriodOf(start, ts, pk.keyPeriod, pk.segment)
}

// byHex returns the key whose KID is hex.
func (pk *presKeys) byHex(hex string) (protection.Key, bool) { return keyByHex(pk.byPeriod, hex) }

// hls returns how the media playlists write the key tags, their key
// URIs under prefix; nothing for a clear presentation (pk nil).
func (pk *presKeys) hls(prefix string) hlsKeys {
	if pk == nil {
		return hlsKeys{}
	}
	return hlsKeys{uriPrefix: prefix, systems: pk.systems}
}

// hlsKey returns the EXT-X-KEY before a segment starting at start ticks
// of timescale ts (hlsKeys.tag); nil for a clear presentation (pk nil).
func (pk *presKeys) hlsKey(h hlsKeys, start int64, ts uint32) *playlist.MediaKey {
	if pk == nil {
		return nil
	}
	k, ok := pk.byPeriod[pk.periodOf(start, ts)]
	if !ok {
		return nil // cannot be: keyed left such segments out
	}
	return h.tag(k.KID)
}

// keyed returns rs, the renditions of an encrypted on-demand
// presentation, with the segments whose key and Period its manifests can
// name. It cuts every rendition before the first key period that has
// segments and no key in pk: a crash can leave segments of a period
// indexed whose key was not yet recorded (archive.Epoch.AddKey). And it
// leaves out the key periods in which a media type of rs has no segment,
// such as the last audio segment of a stream, which outlasts the video
// into a new key period: Shaka Player 5.2 cannot match the streams of
// such a Period with the others' and drops the video of the whole
// presentation. Renditions left without segments are dropped.
func (pk *presKeys) keyed(rs []*presRendition) []*presRendition {
	cut := uint64(math.MaxUint64)
	kinds := map[uint64]map[bool]bool{} // media types (video or not) by key period
	all := map[bool]bool{}
	for _, r := range rs {
		all[r.video] = true
		for _, s := range r.segs {
			n := pk.periodOf(s.start, r.timescale)
			if _, ok := pk.byPeriod[n]; !ok {
				cut = min(cut, n)
			}
			if kinds[n] == nil {
				kinds[n] = map[bool]bool{}
			}
			kinds[n][r.video] = true
		}
	}
	drop := func(n uint64) bool { return n >= cut || len(kinds[n]) != len(all) }
	var out []*presRendition
	for _, r := range rs {
		c := *r
		c.segs = slices.DeleteFunc(slices.Clone(r.segs), func(s presSegment) bool { return drop(pk.periodOf(s.start, r.timescale)) })
		if len(c.segs) > 0 {
			out = append(out, &c)
		}
	}
	return out
}

// presProtectedPeriods describes the encrypted presentation p as one
// Period per key period with segments, each with the ContentProtection
// of its key (protectPeriod), as the live MPD does (protectedPeriods),
// and named alike: by the epoch for key period 0, "{epoch}-{n}" for
// period n. Period n begins at n key periods on the epoch's timeline
// (less origin, where an on-demand presentation begins), its
// SegmentTemplates offset by as much; the first Period of an on-demand
// one begins at 0, at origin. It also returns the longest segment.
func presProtectedPeriods(p *presentation, origin time.Duration) ([]*mpd.Period, time.Duration) {
	pk := p.keys
	var numbers []uint64
	for _, r := range p.renditions {
		for _, s := range r.segs {
			if n := pk.periodOf(s.start, r.timescale); !slices.Contains(numbers, n) {
				numbers = append(numbers, n)
			}
		}
	}
	slices.Sort(numbers)
	var out []*mpd.Period
	var maxSeg time.Duration
	for _, n := range numbers {
		k, ok := pk.byPeriod[n]
		if !ok {
			continue // cannot be: keyed left such segments out, and a live instance records a key first
		}
		var rs []*presRendition
		for _, r := range p.renditions {
			c := *r
			c.segs = slices.DeleteFunc(slices.Clone(r.segs), func(s presSegment) bool { return pk.periodOf(s.start, r.timescale) != n })
			rs = append(rs, &c)
		}
		shift := time.Duration(n) * pk.keyPeriod
		start, pto := shift-origin, shift
		if len(out) == 0 && !p.live {
			start, pto = 0, origin
		}
		id := p.epoch
		if n > 0 {
			id += "-" + strconv.FormatUint(n, 10)
		}
		period, d := presPeriod(p, rs, id, start, pto)
		protectPeriod(period, k, pk.systems)
		maxSeg = max(maxSeg, d)
		out = append(out, period)
	}
	return out, maxSeg
}

// kidIndexAge is how long the KIDs read from a stream's archived epochs
// are taken as all there are: a KID not among them is looked for again,
// in the records as they are then, after that long at the earliest.
const kidIndexAge = 2 * time.Second

// kidIndex is what the records of a stream's archived epochs say of their
// keys: the key period of each KID. Never modified once made.
type kidIndex struct {
	read    time.Time
	periods map[protection.KID]protection.Period
}

// archivedKIDs finds the key periods of archived KIDs. It is safe for
// concurrent use.
type archivedKIDs struct {
	reader *archive.Reader
	flight singleflight.Group

	mu sync.Mutex // guards byStream
	// byStream holds the index of each stream looked at lately.
	byStream *simplelru.LRU[string, *kidIndex]
}

func newArchivedKIDs(reader *archive.Reader) *archivedKIDs {
	byStream, _ := simplelru.NewLRU[string, *kidIndex](vodCacheSize, nil)
	return &archivedKIDs{reader: reader, byStream: byStream}
}

// period returns the key period that an archived epoch of stream, not
// being deleted, names kid for; false when none does.
func (a *archivedKIDs) period(ctx context.Context, stream string, kid protection.KID) (protection.Period, bool, error) {
	a.mu.Lock()
	idx, ok := a.byStream.Get(stream)
	a.mu.Unlock()
	if ok {
		if p, found := idx.periods[kid]; found || time.Since(idx.read) < kidIndexAge {
			return p, found, nil
		}
	}
	res, err, _ := a.flight.Do(stream, func() (any, error) {
		// Shared by every waiter: not ended by the first one leaving,
		// bounded on its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		eps, err := a.reader.Epochs(rctx, stream)
		if err != nil {
			return nil, err
		}
		idx := &kidIndex{read: time.Now(), periods: map[protection.KID]protection.Period{}}
		for _, e := range eps {
			enc := e.Meta.Encryption
			if !e.HasMeta || e.Meta.Deleting || enc == nil {
				continue
			}
			for _, k := range enc.Keys {
				idx.periods[k.KID] = protection.Period{Stream: stream, Epoch: e.Meta.Epoch, Number: k.Number}
			}
		}
		a.mu.Lock()
		a.byStream.Add(stream, idx)
		a.mu.Unlock()
		return idx, nil
	})
	if err != nil {
		return protection.Period{}, false, fmt.Errorf("archived keys of %s: %w", stream, err)
	}
	p, found := res.(*kidIndex).periods[kid]
	return p, found, nil
}

// deliveryKeys are the keys key delivery gives (protect_keys.go): those
// the provider issued, and those of the stream's archived epochs, issued
// again.
type deliveryKeys struct {
	keys    Keys
	timeout time.Duration // Protection.KeyTimeout
	// archived finds archived KIDs; nil without an archive.
	archived *archivedKIDs
}

// Lookup implements protection.KeyLookup: the key kid if the provider
// issued it for stream, else if an archived epoch of stream names it,
// the key of its period asked of the provider again, provided that it is
// kid: an origin whose keys are derived from another secret than the
// epoch's gives none (and says why, in the key server's log).
func (d deliveryKeys) Lookup(ctx context.Context, stream string, kid protection.KID) (protection.Key, error) {
	k, err := d.keys.Lookup(ctx, stream, kid)
	if d.archived == nil || !errors.Is(err, protection.ErrUnknownKey) {
		return k, err
	}
	p, ok, aerr := d.archived.period(ctx, stream, kid)
	switch {
	case aerr != nil:
		return protection.Key{}, aerr
	case !ok:
		return k, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	k, err = d.keys.Key(ctx, p)
	switch {
	case err != nil:
		return protection.Key{}, fmt.Errorf("archived key %s: %w", kid, err)
	case k.KID != kid:
		return protection.Key{}, fmt.Errorf("archived key %s of %s/%s period %d: this origin's key of that period is %s: not the secret (-key-secret) the epoch was encrypted with",
			kid, p.Stream, p.Epoch, p.Number, k.KID)
	}
	return k, nil
}

package archive

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/protection"
)

// Encryption is what the record of an encrypted epoch (issue #25) says
// of its keys: what a reader needs to signal them in the manifests of
// the epoch's VOD, clips and DVR window, and to find which key period a
// KID belongs to. It never holds a key: only key IDs and the public
// signalling of DRM systems. The keys stay with the key provider, which
// gives them again for a recorded period (protection.Store derives them
// from its secret). A value is never modified once recorded: Epoch's
// methods record a new one.
type Encryption struct {
	// Scheme is the Common Encryption scheme (ISO/IEC 23001-7), "cbcs".
	Scheme string
	// KeyPeriod and SegmentDuration are the key period rule: key period
	// n is the segments whose start, taken a tenth of SegmentDuration
	// later, falls in [n×KeyPeriod, (n+1)×KeyPeriod) on the epoch's
	// timeline (the origin's keyPeriodOf). A zero KeyPeriod means one key
	// for the whole epoch.
	KeyPeriod, SegmentDuration time.Duration
	// Keys are the keys of the key periods, by Number, as they were
	// issued: one issued ahead of its period may have no segment.
	Keys []PeriodKey
}

// PeriodKey names the key of one key period.
type PeriodKey struct {
	// Number is the key period's number.
	Number uint64 `json:"number"`
	// KID is the key's ID.
	KID protection.KID `json:"kid"`
	// Systems is the signalling of the DRM systems besides ClearKey that
	// the epoch's manifests carried for the key (pssh boxes, HLS key
	// URIs, from a CPIX key server); nil when they carried none.
	Systems []protection.System `json:"systems,omitempty"`
}

// Key returns the key of period n, if recorded.
func (enc *Encryption) Key(n uint64) (PeriodKey, bool) {
	i, ok := slices.BinarySearchFunc(enc.Keys, n, func(k PeriodKey, n uint64) int { return cmp.Compare(k.Number, n) })
	if !ok {
		return PeriodKey{}, false
	}
	return enc.Keys[i], true
}

// withKeys returns a copy of enc with keys added, by Number; a period
// already recorded keeps its key.
func (enc *Encryption) withKeys(keys ...PeriodKey) *Encryption {
	out := *enc
	out.Keys = slices.Clone(enc.Keys)
	for _, k := range keys {
		i, ok := slices.BinarySearchFunc(out.Keys, k.Number, func(k PeriodKey, n uint64) int { return cmp.Compare(k.Number, n) })
		if !ok {
			out.Keys = slices.Insert(out.Keys, i, k)
		}
	}
	return &out
}

// encryptionJSON is the JSON of an Encryption.
type encryptionJSON struct {
	Scheme    string      `json:"scheme"`
	KeyPeriod string      `json:"keyPeriod"`
	Segment   string      `json:"segmentDuration"`
	Keys      []PeriodKey `json:"keys"`
}

// MarshalJSON implements json.Marshaler, durations as Go writes them
// ("2s").
func (enc Encryption) MarshalJSON() ([]byte, error) {
	j := encryptionJSON{
		Scheme: enc.Scheme, KeyPeriod: enc.KeyPeriod.String(), Segment: enc.SegmentDuration.String(), Keys: enc.Keys,
	}
	if j.Keys == nil {
		j.Keys = []PeriodKey{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler. It refuses, with
// ErrInvalid, a record without scheme, a negative key period, a segment
// duration that is not positive and a KID that is not one; its keys are
// sorted by number, the first of a repeated number kept.
func (enc *Encryption) UnmarshalJSON(b []byte) error {
	var j encryptionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: encryption: %w", ErrInvalid, err)
	}
	kp, err := time.ParseDuration(j.KeyPeriod)
	if err != nil {
		return fmt.Errorf("%w: key period: %w", ErrInvalid, err)
	}
	seg, err := time.ParseDuration(j.Segment)
	if err != nil {
		return fmt.Errorf("%w: segment duration: %w", ErrInvalid, err)
	}
	if j.Scheme == "" || kp < 0 || seg <= 0 {
		return fmt.Errorf("%w: encryption %q, key period %v, segment duration %v", ErrInvalid, j.Scheme, kp, seg)
	}
	out := Encryption{Scheme: j.Scheme, KeyPeriod: kp, SegmentDuration: seg}
	*enc = *out.withKeys(j.Keys...)
	return nil
}

// Encrypted records that the epoch is encrypted, with enc's scheme, key
// period rule and keys (more come with AddKey), and queues the record's
// write. It never blocks. An epoch begun again (a restarted origin
// taking it up) keeps the keys its record held.
func (e *Epoch) Encrypted(enc Encryption) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := enc.Keys
	enc.Keys = nil
	if old := e.meta.Encryption; old != nil {
		keys = append(slices.Clone(old.Keys), keys...)
	}
	e.meta.Encryption = enc.withKeys(keys...)
	e.queueMetaLocked()
}

// AddKey records the key of a key period of an encrypted epoch as it is
// issued, and queues the record's write (one write carries every key
// added before it); nothing for a period already recorded, or an epoch
// not Encrypted. It never blocks. Record a key before the first segment
// of its period: the record is then written before it (the queue is
// written in order), and a crash leaves no segment whose key is not
// named.
func (e *Epoch) AddKey(k PeriodKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	enc := e.meta.Encryption
	if enc == nil {
		return
	}
	if _, ok := enc.Key(k.Number); ok {
		return
	}
	e.meta.Encryption = enc.withKeys(k)
	e.queueMetaLocked()
}

// queueMetaLocked queues a write of the record, unless one is queued and
// not yet begun: that one will carry the change. e.mu must be held.
func (e *Epoch) queueMetaLocked() {
	if e.metaQueued {
		return
	}
	e.metaQueued = true
	e.w.enqueue(item{op: opBegin, ep: e})
}

// mergeStoredKeysLocked takes into the record the encryption that the
// stored record of the epoch holds (an epoch begun again: its earlier
// process issued those keys), once, before the record's first write:
// the first write (Begin's) may come before this process calls
// Encrypted, and must not wipe them. e.metaMu must be held.
func (e *Epoch) mergeStoredKeysLocked(ctx context.Context) error {
	if e.keysMerged {
		return nil
	}
	b, err := e.w.cfg.Store.Get(ctx, e.prefix+metaName, 0, -1)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read epoch metadata: %w", err)
	default:
		var old EpochMeta
		if json.Unmarshal(b, &old) == nil && old.Encryption != nil {
			e.mu.Lock()
			if e.meta.Encryption == nil {
				e.meta.Encryption = old.Encryption
			} else {
				e.meta.Encryption = e.meta.Encryption.withKeys(old.Encryption.Keys...)
			}
			e.mu.Unlock()
		}
	}
	e.keysMerged = true
	return nil
}

package protection

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrUnknownKey is returned (wrapped) by Lookup for a KID that is not a key
// of the stream: never issued, issued for another stream, or forgotten.
var ErrUnknownKey = errors.New("unknown key")

// secretSize is the size of a Store's secret.
const secretSize = 32

// defaultFetchTimeout bounds a key server request when
// StoreConfig.FetchTimeout is zero.
const defaultFetchTimeout = 10 * time.Second

// Period names a key period: the Number-th key period of an epoch of a
// stream. How media time maps to key periods (every segment from a given
// number on) is the caller's choice; the Store only keeps keys.
type Period struct {
	Stream string
	Epoch  string
	Number uint64
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Secret, 32 bytes, derives every KID, and every key and IV unless
	// Fetch is set. Nil means 32 bytes from crypto/rand: the keys then
	// die with the process unless exported. A backup origin given the same
	// secret (Export, Import) derives the same keys for every period, and
	// so encrypts to the same bytes.
	Secret []byte
	// Fetch, when not nil, obtains the key of a new period from a key
	// server, given the period and the KID derived for it
	// (CPIXClient.Fetch); the key's IV is derived from the Secret if the
	// server gives none. Nil means keys are derived from the Secret.
	Fetch func(ctx context.Context, p Period, kid KID) (Key, error)
	// FetchTimeout bounds one Fetch, which runs detached from the callers
	// waiting for it. Zero means 10 s.
	FetchTimeout time.Duration
}

// Store is the built-in key provider: it issues the key of each key period
// and finds keys by KID for key delivery. It is safe for concurrent use.
//
// KIDs are derived, HMAC-SHA256(secret, "kid" || period), so that two
// origins sharing the secret name a period's key alike; key values and IVs
// too unless they come from a key server (Fetch).
type Store struct {
	secret  []byte
	fetch   func(ctx context.Context, p Period, kid KID) (Key, error)
	timeout time.Duration
	flight  singleflight.Group

	mu sync.Mutex
	// byKID holds the issued keys, byPeriod their periods; mu protects
	// both.
	byKID    map[KID]issued
	byPeriod map[Period]KID
}

// issued is a key and the period it was issued for.
type issued struct {
	period Period
	key    Key
}

// NewStore validates a copy of cfg and returns a Store.
func NewStore(cfg StoreConfig) (*Store, error) {
	s := &Store{
		fetch:    cfg.Fetch,
		timeout:  cfg.FetchTimeout,
		byKID:    map[KID]issued{},
		byPeriod: map[Period]KID{},
	}
	switch {
	case cfg.Secret == nil:
		s.secret = make([]byte, secretSize)
		if _, err := rand.Read(s.secret); err != nil {
			return nil, fmt.Errorf("new store: %w", err)
		}
	case len(cfg.Secret) != secretSize:
		return nil, fmt.Errorf("new store: secret of %d bytes, want %d", len(cfg.Secret), secretSize)
	default:
		s.secret = append([]byte(nil), cfg.Secret...)
	}
	if s.timeout < 0 {
		return nil, fmt.Errorf("new store: negative fetch timeout %v", s.timeout)
	}
	if s.timeout == 0 {
		s.timeout = defaultFetchTimeout
	}
	return s, nil
}

// Key returns the key of period p, issuing it on first use. With a key
// server, the first callers for a period share one request; ctx bounds
// only this caller's wait.
func (s *Store) Key(ctx context.Context, p Period) (Key, error) {
	s.mu.Lock()
	kid, ok := s.byPeriod[p]
	if ok {
		k := s.byKID[kid].key
		s.mu.Unlock()
		return k, nil
	}
	s.mu.Unlock()

	kid = s.derivedKID(p)
	if s.fetch == nil {
		return s.issue(p, s.derivedKey(p, kid)), nil
	}
	ch := s.flight.DoChan(kid.Hex(), func() (any, error) {
		s.mu.Lock()
		if is, ok := s.byKID[kid]; ok {
			s.mu.Unlock()
			return is.key, nil
		}
		s.mu.Unlock()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		k, err := s.fetch(fctx, p, kid)
		if err != nil {
			return Key{}, err
		}
		if k.KID != kid {
			return Key{}, fmt.Errorf("key server answered for KID %s, asked for %s", k.KID, kid)
		}
		if k.IV == ([16]byte{}) {
			k.IV = s.derivedKey(p, kid).IV
		}
		return s.issue(p, k), nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Key{}, fmt.Errorf("key of %s/%s period %d: %w", p.Stream, p.Epoch, p.Number, r.Err)
		}
		return r.Val.(Key), nil
	case <-ctx.Done():
		return Key{}, ctx.Err()
	}
}

// issue records k as the key of p, unless one was recorded meanwhile, and
// returns the recorded key.
func (s *Store) issue(p Period, k Key) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kid, ok := s.byPeriod[p]; ok {
		return s.byKID[kid].key
	}
	s.byPeriod[p] = k.KID
	s.byKID[k.KID] = issued{period: p, key: k}
	return k
}

// Lookup returns the key kid if it was issued for a period of stream. It
// is what key delivery asks: a viewer allowed to watch one stream cannot
// obtain the keys of another by naming their KIDs.
func (s *Store) Lookup(_ context.Context, stream string, kid KID) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is, ok := s.byKID[kid]
	if !ok || is.period.Stream != stream {
		return Key{}, fmt.Errorf("%w: %s for stream %q", ErrUnknownKey, kid, stream)
	}
	return is.key, nil
}

// Forget drops the keys of an epoch of a stream, once nothing of it is
// served any more.
func (s *Store) Forget(stream, epoch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, kid := range s.byPeriod {
		if p.Stream == stream && p.Epoch == epoch {
			delete(s.byPeriod, p)
			delete(s.byKID, kid)
		}
	}
}

// derivedKID returns the KID of p: HMAC-SHA256(secret, "kid" || p), with
// the version and variant bits of an RFC 9562 version 8 UUID.
func (s *Store) derivedKID(p Period) KID {
	var k KID
	copy(k[:], s.mac("kid", p))
	k[6] = k[6]&0x0f | 0x80
	k[8] = k[8]&0x3f | 0x80
	return k
}

// derivedKey returns the key of p derived from the secret.
func (s *Store) derivedKey(p Period, kid KID) Key {
	k := Key{KID: kid}
	copy(k.Value[:], s.mac("key", p))
	copy(k.IV[:], s.mac("iv", p))
	return k
}

// mac returns HMAC-SHA256(secret, label || 0 || stream || 0 || epoch || 0 || number).
func (s *Store) mac(label string, p Period) []byte {
	h := hmac.New(sha256.New, s.secret)
	for _, part := range []string{label, p.Stream, p.Epoch} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], p.Number)
	h.Write(n[:])
	return h.Sum(nil)
}

// storeExport is the JSON form of Export.
type storeExport struct {
	Secret  []byte         `json:"secret"`
	Periods []exportPeriod `json:"periods,omitempty"`
}

// exportPeriod is one issued key in an export. Keys from a key server are
// exported with their value; derived keys are derived again.
type exportPeriod struct {
	Stream string   `json:"stream"`
	Epoch  string   `json:"epoch"`
	Number uint64   `json:"number"`
	KID    string   `json:"kid"`
	Value  []byte   `json:"value,omitempty"`
	IV     []byte   `json:"iv,omitempty"`
	PSSH   []System `json:"systems,omitempty"`
}

// Export returns the secret and the keys issued so far, as JSON, for
// Import at a backup origin. It is as secret as the keys.
func (s *Store) Export() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := storeExport{Secret: s.secret}
	for kid, is := range s.byKID {
		ep := exportPeriod{Stream: is.period.Stream, Epoch: is.period.Epoch, Number: is.period.Number, KID: kid.String()}
		if s.fetch != nil {
			ep.Value, ep.IV, ep.PSSH = is.key.Value[:], is.key.IV[:], is.key.Systems
		}
		out.Periods = append(out.Periods, ep)
	}
	return json.Marshal(out)
}

// ImportStore returns a Store holding what Export wrote, with cfg for what
// the export does not say (Fetch, FetchTimeout); cfg.Secret must be nil.
func ImportStore(data []byte, cfg StoreConfig) (*Store, error) {
	var in storeExport
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("import store: %w", err)
	}
	if cfg.Secret != nil {
		return nil, errors.New("import store: the secret comes from the export")
	}
	cfg.Secret = in.Secret
	s, err := NewStore(cfg)
	if err != nil {
		return nil, fmt.Errorf("import store: %w", err)
	}
	for _, ep := range in.Periods {
		p := Period{Stream: ep.Stream, Epoch: ep.Epoch, Number: ep.Number}
		kid := s.derivedKID(p)
		if kid.String() != ep.KID {
			return nil, fmt.Errorf("import store: KID %s of %s/%s period %d is not derived from the secret",
				ep.KID, p.Stream, p.Epoch, p.Number)
		}
		k := s.derivedKey(p, kid)
		if ep.Value != nil {
			if len(ep.Value) != 16 || len(ep.IV) != 16 {
				return nil, fmt.Errorf("import store: key %s: bad value or IV size", ep.KID)
			}
			copy(k.Value[:], ep.Value)
			copy(k.IV[:], ep.IV)
			k.Systems = ep.PSSH
		}
		s.issue(p, k)
	}
	return s, nil
}

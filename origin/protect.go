package origin

// Encrypted streams (issue #25): the streams Protection chooses are
// encrypted with Common Encryption 'cbcs' (package protection) as the
// packager hands their chunks out, so that every file the origin serves,
// streams chunk by chunk, lists as an LL-HLS part or gives the archive is
// the encrypted one, the same for HLS and DASH players. The manifests say
// which key each segment needs (protect_manifest.go), and the keys are
// delivered at /live/{stream}/license and /live/{stream}/keys/{kid}
// (protect_keys.go), never cached.
//
// A key period is every segment of an instance whose start falls in
// [n×KeyPeriod, (n+1)×KeyPeriod) on the instance's timeline (keyPeriodOf).
// The init segment names the key of period 0 as its default KID for the
// whole instance; a later period's fragments name their key in-band
// (protection.Encryptor.Encrypt). Two origins fed the same publisher
// (dual hot ingest, directory.go) agree on the epoch and, given the same
// keys, encrypt to the same bytes.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/protection"
)

// Keys is where the origin gets the content keys of its encrypted
// streams and finds them again for key delivery. protection.Store is one:
// keys derived from a secret (shared by the origins of a fleet that serve
// a stream together), or fetched from a DRM's key server with CPIX
// (protection.CPIXClient). Declared here, by its consumer; its methods
// must be safe for concurrent use.
type Keys interface {
	// Key returns the key of period p, issuing it on first use: the same
	// key for the same period, every time.
	Key(ctx context.Context, p protection.Period) (protection.Key, error)
	// Lookup returns the key kid if it was issued for stream.
	Lookup(ctx context.Context, stream string, kid protection.KID) (protection.Key, error)
}

// Protection configures the encryption of streams.
type Protection struct {
	// Keys issues and finds the keys. Required.
	Keys Keys
	// Encrypt says whether a stream is encrypted, decided when an
	// instance of it begins. Nil means every stream. An encrypted stream
	// should also be private (Config.Access): its keys go to whoever may
	// watch it.
	Encrypt func(stream string) bool
	// KeyPeriod is how long a key is used: a new key period begins with
	// the first segment at or after each multiple of it on an instance's
	// timeline. Zero means one key for an instance's whole life; else at
	// least the segment duration.
	KeyPeriod time.Duration
	// Systems signals, besides ClearKey, the DRM systems the keys carry
	// (from a CPIX key server: Widevine and PlayReady pssh in the MPD,
	// their EXT-X-KEY in HLS playlists). False means ClearKey only.
	Systems bool
	// KeyTimeout bounds the wait for a key at a key change (a key server's
	// answer). Zero means 10 s. The next period's key is asked for as
	// soon as a period begins, so it is at hand when needed.
	KeyTimeout time.Duration
}

// protector is a Server's side of encryption: its settings, and the key
// requests it runs ahead of time. Nil when no stream is encrypted.
type protector struct {
	cfg     Protection
	segment time.Duration // Config.SegmentDuration
	// ahead counts the key requests for a coming period; Server.Close
	// waits for them.
	ahead sync.WaitGroup
}

// newProtector validates cfg against the server's segment duration.
func newProtector(cfg *Protection, segment time.Duration) (*protector, error) {
	if cfg == nil {
		return nil, nil
	}
	c := *cfg
	switch {
	case c.Keys == nil:
		return nil, errors.New("Protection.Keys is required")
	case c.KeyPeriod < 0 || c.KeyPeriod > 0 && c.KeyPeriod < segment:
		return nil, fmt.Errorf("Protection.KeyPeriod %v: zero, or at least a segment (%v)", c.KeyPeriod, segment)
	case c.KeyTimeout < 0:
		return nil, fmt.Errorf("Protection.KeyTimeout %v is negative", c.KeyTimeout)
	}
	if c.KeyTimeout == 0 {
		c.KeyTimeout = 10 * time.Second
	}
	return &protector{cfg: c, segment: segment}, nil
}

// encrypts reports whether a new instance of stream name is encrypted.
func (p *protector) encrypts(name string) bool {
	return p != nil && (p.cfg.Encrypt == nil || p.cfg.Encrypt(name))
}

// wait waits for the key requests running ahead.
func (p *protector) wait() {
	if p != nil {
		p.ahead.Wait()
	}
}

// keyPeriodOf returns the key period of a segment (or chunk) that starts
// at start ticks of timescale ts on its instance's timeline. A video
// segment may start up to a tenth of a segment before the boundary it was
// cut at (packager: a keyframe slightly early still cuts), so the start
// is taken that much later: every rendition's segment cut at a boundary
// falls in the same period.
func keyPeriodOf(start int64, ts uint32, keyPeriod, segment time.Duration) uint64 {
	if keyPeriod <= 0 || start < 0 {
		return 0
	}
	return uint64((mediatime.Duration(start, ts) + segment/10) / keyPeriod)
}

// streamKeys are the keys of one encrypted stream instance: the key of
// each key period it used (so that its manifests name them), and each
// rendition's encryptor. Safe for concurrent use; a key, once recorded
// for a period, never changes, and is recorded before any segment of
// its period is published, so the manifests built from a snapshot are a
// function of it.
type streamKeys struct {
	prot        *protector
	name, epoch string

	mu sync.Mutex
	// keys holds the key of each period used so far; guarded by mu.
	keys map[uint64]protection.Key
	// onKey, when not nil, is told of each key recorded in keys, with mu
	// held (archiveKeys); guarded by mu.
	onKey func(n uint64, k protection.Key)
	// encs holds each rendition's encryptor, with the clear init segment
	// it was made from; guarded by mu.
	encs map[string]renditionCipher
}

// renditionCipher is a rendition's encryptor and the clear init segment
// it protects.
type renditionCipher struct {
	clear []byte
	enc   *protection.Encryptor
}

// newStreamKeys returns the keys of instance epoch of stream name, with
// the key of period 0 (that of every init segment) fetched, or an error
// when the key provider cannot give it.
func (p *protector) newStreamKeys(ctx context.Context, name, epoch string) (*streamKeys, error) {
	sk := &streamKeys{prot: p, name: name, epoch: epoch, keys: map[uint64]protection.Key{}, encs: map[string]renditionCipher{}}
	if _, err := sk.key(ctx, 0); err != nil {
		return nil, err
	}
	return sk, nil
}

// key returns the key of period n, asking the provider on first use.
func (sk *streamKeys) key(ctx context.Context, n uint64) (protection.Key, error) {
	if k, ok := sk.known(n); ok {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(ctx, sk.prot.cfg.KeyTimeout)
	defer cancel()
	k, err := sk.prot.cfg.Keys.Key(ctx, protection.Period{Stream: sk.name, Epoch: sk.epoch, Number: n})
	if err != nil {
		return protection.Key{}, fmt.Errorf("key of %s/%s period %d: %w", sk.name, sk.epoch, n, err)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if old, ok := sk.keys[n]; ok {
		return old, nil
	}
	sk.keys[n] = k
	if sk.onKey != nil {
		sk.onKey(n, k)
	}
	return k, nil
}

// protectionScheme is the Common Encryption scheme of encrypted
// streams (ISO/IEC 23001-7 10.4).
const protectionScheme = "cbcs"

// archiveKeys records in ep, the instance's epoch in the archive, that
// it is encrypted, its key period rule, and the KID of each key (with
// the DRM signalling its manifests carry), those recorded so far and
// each one as it is recorded: before any segment of its period is
// encrypted, and so before the archive is given one. Never a key.
func (sk *streamKeys) archiveKeys(ep *archive.Epoch) {
	cfg := sk.prot.cfg
	named := func(n uint64, k protection.Key) archive.PeriodKey {
		pk := archive.PeriodKey{Number: n, KID: k.KID}
		if cfg.Systems {
			pk.Systems = k.Systems
		}
		return pk
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	enc := archive.Encryption{Scheme: protectionScheme, KeyPeriod: cfg.KeyPeriod, SegmentDuration: sk.prot.segment}
	for n, k := range sk.keys {
		enc.Keys = append(enc.Keys, named(n, k))
	}
	ep.Encrypted(enc) // sorts the keys
	sk.onKey = func(n uint64, k protection.Key) { ep.AddKey(named(n, k)) }
}

// known returns the key of period n if it was used.
func (sk *streamKeys) known(n uint64) (protection.Key, bool) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	k, ok := sk.keys[n]
	return k, ok
}

// ahead asks for the key of period n in the background, so that it is at
// hand when its period begins: a key server may take seconds.
func (sk *streamKeys) ahead(n uint64) {
	if _, ok := sk.known(n); ok {
		return
	}
	sk.prot.ahead.Add(1)
	go func() {
		defer sk.prot.ahead.Done()
		_, _ = sk.key(context.Background(), n) // a failure is met again, and reported, when the key is needed
	}()
}

// encryptor returns rendition rid's encryptor for its clear init segment:
// the one made before when the init segment is the same (a publisher
// resuming, a transcoder restarting), else a new one with the key of
// period 0, which is already at hand (newStreamKeys).
func (sk *streamKeys) encryptor(rid string, clear []byte) (*protection.Encryptor, error) {
	sk.mu.Lock()
	if c, ok := sk.encs[rid]; ok && string(c.clear) == string(clear) {
		sk.mu.Unlock()
		return c.enc, nil
	}
	k0, ok := sk.keys[0]
	sk.mu.Unlock()
	if !ok {
		return nil, errors.New("no key for period 0")
	}
	enc, err := protection.New(protection.Config{Init: clear, Key: k0, Track: rid})
	if err != nil {
		return nil, fmt.Errorf("protect %s of %s: %w", rid, sk.name, err)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if _, ok := sk.encs[rid]; !ok {
		sk.encs[rid] = renditionCipher{clear: clear, enc: enc}
	}
	return enc, nil
}

// protectedInit returns what rendition rid's init segment is when its
// clear one is clear: clear itself for a clear instance (sk nil).
func (sk *streamKeys) protectedInit(rid string, clear []byte) ([]byte, error) {
	if sk == nil {
		return clear, nil
	}
	enc, err := sk.encryptor(rid, clear)
	if err != nil {
		return nil, err
	}
	return enc.Init(), nil
}

package access

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// MaxRevocationsFile bounds a revocation file, in bytes: about 300 000
// session ids of 50 bytes.
const MaxRevocationsFile = 16 << 20

// RevocationSet is a set of revoked session ids (a token's "sid"). A nil
// *RevocationSet is empty. It is immutable, and safe for concurrent use:
// a Verifier swaps whole sets (SetRevocations), and Change makes a new
// set from one without copying all of it.
type RevocationSet struct {
	// parts are the sets of ids whose union this is, each not empty:
	// one, or those of the sets UnionRevocations joined.
	parts []*idShards
	n     int // ids in the union
}

// revocationShards is the number of maps a set's ids are split over: a
// change copies only the maps of the ids it changes.
const revocationShards = 64

// idShards are ids split over maps by their hash. Immutable once made.
type idShards struct {
	seed maphash.Seed
	m    [revocationShards]map[string]struct{}
	n    int
}

func newIDShards(n int) *idShards {
	s := &idShards{seed: maphash.MakeSeed()}
	for i := range s.m {
		s.m[i] = make(map[string]struct{}, n/revocationShards)
	}
	return s
}

func (s *idShards) shard(id string) int { return int(maphash.String(s.seed, id) % revocationShards) }

func (s *idShards) has(id string) bool {
	_, ok := s.m[s.shard(id)][id]
	return ok
}

// add adds id, unless it is there, to a shards being made.
func (s *idShards) add(id string) {
	m := s.m[s.shard(id)]
	if _, ok := m[id]; !ok {
		m[id] = struct{}{}
		s.n++
	}
}

// set returns the set of the ids of s.
func (s *idShards) set() *RevocationSet {
	if s.n == 0 {
		return &RevocationSet{}
	}
	return &RevocationSet{parts: []*idShards{s}, n: s.n}
}

// NewRevocationSet returns the set of ids.
func NewRevocationSet(ids ...string) *RevocationSet {
	s := newIDShards(len(ids))
	for _, id := range ids {
		s.add(id)
	}
	return s.set()
}

// Change returns the set of rs's ids, with those of add, without those
// of remove (an id in both is removed). It shares with rs the maps it
// does not change: the ids are split over 64 maps, and a change of a few
// costs a copy of 1/64 of the set for each, of all of it at worst. rs
// does not change. (A union of several sets is copied whole first.)
func (rs *RevocationSet) Change(add, remove []string) *RevocationSet {
	var s *idShards
	switch {
	case rs.Len() == 0:
		s = newIDShards(0)
	case len(rs.parts) == 1:
		c := *rs.parts[0]
		s = &c
	default:
		s = newIDShards(rs.n)
		for _, p := range rs.parts {
			for _, m := range p.m {
				for id := range m {
					s.add(id)
				}
			}
		}
	}
	var copied [revocationShards]bool
	own := func(i int) map[string]struct{} {
		if !copied[i] {
			s.m[i], copied[i] = maps.Clone(s.m[i]), true
		}
		return s.m[i]
	}
	for _, id := range add {
		i := s.shard(id)
		if _, ok := s.m[i][id]; !ok {
			own(i)[id] = struct{}{}
			s.n++
		}
	}
	for _, id := range remove {
		i := s.shard(id)
		if _, ok := s.m[i][id]; ok {
			delete(own(i), id)
			s.n--
		}
	}
	return s.set()
}

// UnionRevocations returns the set of the ids revoked in any of sets (a
// nil one is empty), for a PoP that follows several lists: a file and the
// fleet's directory. It shares the sets' memory rather than copy it:
// making it costs a lookup for each id of all but the largest set, to
// count them, and Has a lookup for each set.
func UnionRevocations(sets ...*RevocationSet) *RevocationSet {
	var parts []*idShards
	for _, rs := range sets {
		if rs != nil {
			parts = append(parts, rs.parts...)
		}
	}
	slices.SortStableFunc(parts, func(a, b *idShards) int { return cmp.Compare(b.n, a.n) })
	u := &RevocationSet{parts: parts}
	for i, p := range parts {
		if i == 0 {
			u.n = p.n
			continue
		}
		for _, m := range p.m {
		ids:
			for id := range m {
				for _, earlier := range parts[:i] {
					if earlier.has(id) {
						continue ids
					}
				}
				u.n++
			}
		}
	}
	return u
}

// ParseRevocations reads a revocation list: one session id a line;
// blank lines, and lines starting with #, are skipped; spaces around an
// id are trimmed. An id longer than a token's sid may be is an error: a
// line of something else, most likely.
func ParseRevocations(data []byte) (*RevocationSet, error) {
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	for n := 1; sc.Scan(); n++ {
		id := strings.TrimSpace(sc.Text())
		if id == "" || strings.HasPrefix(id, "#") {
			continue
		}
		if len(id) > maxSession {
			return nil, fmt.Errorf("line %d: a session id of %d bytes, want at most %d", n, len(id), maxSession)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	return NewRevocationSet(ids...), nil
}

// LoadRevocations reads the revocation list at path (see
// ParseRevocations), of at most MaxRevocationsFile bytes.
func LoadRevocations(path string) (*RevocationSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRevocations(f, path)
}

// readRevocations reads the revocation list of f, named path.
func readRevocations(f io.Reader, path string) (*RevocationSet, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxRevocationsFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxRevocationsFile {
		return nil, fmt.Errorf("%s: over %d bytes", path, MaxRevocationsFile)
	}
	rs, err := ParseRevocations(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// Has reports whether session id is revoked.
func (rs *RevocationSet) Has(id string) bool {
	if rs == nil {
		return false
	}
	for _, p := range rs.parts {
		if p.has(id) {
			return true
		}
	}
	return false
}

// Len returns the number of revoked sessions.
func (rs *RevocationSet) Len() int {
	if rs == nil {
		return 0
	}
	return rs.n
}

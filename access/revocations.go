package access

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxRevocationsFile bounds a revocation file, in bytes: about 300 000
// session ids of 50 bytes.
const MaxRevocationsFile = 16 << 20

// RevocationSet is a set of revoked session ids (a token's "sid"). A nil
// *RevocationSet is empty. It is immutable, and safe for concurrent use:
// a Verifier swaps whole sets (SetRevocations).
type RevocationSet struct {
	ids map[string]struct{}
}

// NewRevocationSet returns the set of ids.
func NewRevocationSet(ids ...string) *RevocationSet {
	rs := &RevocationSet{ids: make(map[string]struct{}, len(ids))}
	for _, id := range ids {
		rs.ids[id] = struct{}{}
	}
	return rs
}

// ParseRevocations reads a revocation list: one session id a line;
// blank lines, and lines starting with #, are skipped; spaces around an
// id are trimmed. An id longer than a token's sid may be is an error: a
// line of something else, most likely.
func ParseRevocations(data []byte) (*RevocationSet, error) {
	rs := &RevocationSet{ids: map[string]struct{}{}}
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
		rs.ids[id] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	return rs, nil
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
	_, ok := rs.ids[id]
	return ok
}

// Len returns the number of revoked sessions.
func (rs *RevocationSet) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.ids)
}

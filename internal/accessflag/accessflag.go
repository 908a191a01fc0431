// Package accessflag holds the flags of the commands whose PoP checks who
// may watch (cmd/pop, cmd/live): the public keys of playback tokens, the
// revoked sessions, the client networks served, the trusted proxies.
package accessflag

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/golivestream/live/access"
)

// Flags are the access flags.
type Flags struct {
	keys, revoked, allow, deny, trusted *string
}

// Add registers the access flags on fs.
func Add(fs *flag.FlagSet) *Flags {
	return &Flags{
		keys:    fs.String("token-keys", "", "public keys of playback tokens: directories of KID.pub files or PEM files, comma-separated (empty: no token is valid, and streams that need one are denied)"),
		revoked: fs.String("revoked", "", "file of revoked session ids, one per line, read again when it changes (empty: none); with -etcd, the sessions revoked in the directory (token revoke) are denied too"),
		allow:   fs.String("allow-networks", "", "client networks served, comma-separated CIDRs (empty: every network)"),
		deny:    fs.String("deny-networks", "", "client networks denied, comma-separated CIDRs"),
		trusted: fs.String("trusted-proxies", "", "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated (empty: none)"),
	}
}

// Access is what the flags configure.
type Access struct {
	// Tokens checks playback tokens; nil without -token-keys.
	Tokens *access.Verifier
	// Rules are the networks served; nil for every one.
	Rules *access.Rules
	// TrustedProxies are the proxies believed; nil for none.
	TrustedProxies *access.Networks
	// Revocations follows -revoked, nil without: Run it.
	Revocations *access.RevocationFile

	lists *revocationLists // nil without -token-keys
}

// revocationLists are the lists of revoked sessions a PoP follows, the
// file of -revoked and the fleet's directory, joined into its
// Verifier's set.
type revocationLists struct {
	tokens *access.Verifier

	mu              sync.Mutex // protects the sets, and orders their union's updates
	file, directory *access.RevocationSet
}

func (l *revocationLists) setFile(rs *access.RevocationSet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file = rs
	l.applyLocked()
}

// applyLocked gives the Verifier the union of the lists.
func (l *revocationLists) applyLocked() {
	l.tokens.SetRevocations(access.UnionRevocations(l.file, l.directory))
}

// ChangeDirectoryRevocations changes the sessions revoked in the fleet's
// directory, which Tokens denies together with those of -revoked: it is
// the Apply of a directory.Revocations (reset: added is the whole list;
// else added and removed are what changed). Without -token-keys it does
// nothing: no token is admitted anyway.
func (a Access) ChangeDirectoryRevocations(reset bool, added, removed []string) {
	l := a.lists
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if reset {
		l.directory = access.NewRevocationSet(added...)
	} else {
		l.directory = l.directory.Change(added, removed)
	}
	l.applyLocked()
}

// Build reads the keys and the revocation list the flags name and parses
// the networks.
func (f *Flags) Build(log *slog.Logger) (Access, error) {
	var a Access
	var err error
	if *f.allow != "" || *f.deny != "" {
		if a.Rules, err = access.ParseRules(*f.allow, *f.deny); err != nil {
			return Access{}, fmt.Errorf("-allow-networks, -deny-networks: %w", err)
		}
	}
	if *f.trusted != "" {
		if a.TrustedProxies, err = access.ParseNetworks(*f.trusted); err != nil {
			return Access{}, fmt.Errorf("-trusted-proxies: %w", err)
		}
	}
	if *f.keys == "" {
		if *f.revoked != "" {
			return Access{}, fmt.Errorf("-revoked needs -token-keys")
		}
		return a, nil
	}
	keys, err := access.LoadPublicKeys(strings.Split(*f.keys, ",")...)
	if err != nil {
		return Access{}, fmt.Errorf("-token-keys: %w", err)
	}
	if a.Tokens, err = access.New(access.Config{Keys: keys, Logger: log}); err != nil {
		return Access{}, fmt.Errorf("-token-keys: %w", err)
	}
	a.lists = &revocationLists{tokens: a.Tokens}
	if *f.revoked != "" {
		a.Revocations, err = access.NewRevocationFile(access.RevocationFileConfig{Path: *f.revoked, Apply: a.lists.setFile, Logger: log})
		if err != nil {
			return Access{}, fmt.Errorf("-revoked: %w", err)
		}
		if _, err := a.Revocations.Load(); err != nil {
			return Access{}, fmt.Errorf("-revoked: %w", err)
		}
	}
	return a, nil
}

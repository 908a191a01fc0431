package access

import (
	"fmt"
	"net/netip"
)

// Rules say which client addresses may watch: those in Allow (any, when
// Allow is empty) and not in Deny. Deny wins over Allow, so that a
// network can be let in with a hole in it ("allow 10.0.0.0/8, deny
// 10.6.6.0/24"). A request passes when every Rules on its way allows it:
// the node's, then its stream's; no Rules value lets in what another one
// denies. A nil *Rules allows every address.
//
// Rules is a value to build once and share: safe for concurrent use as
// long as nobody changes its fields; replace the whole value to change
// it.
type Rules struct {
	// Allow is where clients may watch from. Nil or empty means anywhere.
	Allow *Networks
	// Deny is where they may not, whatever Allow says. Nil or empty means
	// nowhere.
	Deny *Networks
}

// ParseRules returns the Rules of two comma-separated lists of networks,
// as flags give them (see ParseNetworks).
func ParseRules(allow, deny string) (*Rules, error) {
	a, err := ParseNetworks(allow)
	if err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	d, err := ParseNetworks(deny)
	if err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	return &Rules{Allow: a, Deny: d}, nil
}

// Allows reports whether a client at a may watch. The zero Addr (an
// address that could not be told) is allowed only when Allow is empty.
func (r *Rules) Allows(a netip.Addr) bool {
	if r == nil {
		return true
	}
	if r.Deny.Contains(a) {
		return false
	}
	return r.Allow.Len() == 0 || r.Allow.Contains(a)
}

// Check returns nil when a client at a may watch, else ErrAddressDenied.
func (r *Rules) Check(a netip.Addr) error {
	if !r.Allows(a) {
		return ErrAddressDenied
	}
	return nil
}

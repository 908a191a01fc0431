package access

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Networks is a set of IP networks, IPv4 and IPv6, looked up in
// O(log n) without allocating. An IPv4-mapped IPv6 address or network
// (::ffff:10.0.0.0/104) is taken as IPv4 (10.0.0.0/8), so one rule covers
// a client however its socket spells it. A nil *Networks is empty.
// Networks is immutable, and safe for concurrent use.
type Networks struct {
	prefixes []netip.Prefix // as given, normalized
	ranges   []addrRange    // sorted, disjoint, not adjacent
}

// addrRange is the addresses from lo to hi, both included, of one family.
type addrRange struct{ lo, hi netip.Addr }

// NewNetworks returns the set of prefixes. Invalid prefixes (the zero
// Prefix) are skipped.
func NewNetworks(prefixes ...netip.Prefix) *Networks {
	n := &Networks{}
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = normalPrefix(p)
		n.prefixes = append(n.prefixes, p)
		n.ranges = append(n.ranges, addrRange{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(n.ranges, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	merged := n.ranges[:0]
	for _, r := range n.ranges {
		if k := len(merged) - 1; k >= 0 && touches(merged[k], r.lo) {
			if r.hi.Compare(merged[k].hi) > 0 {
				merged[k].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	n.ranges = merged
	return n
}

// ParseNetworks parses a comma-separated list of networks
// ("10.0.0.0/8, 2001:db8::/32") for a flag; a bare address is a network
// of one address. Host bits are dropped (10.1.2.3/8 is 10.0.0.0/8), as
// a flag's user means. The empty string is the empty set.
func ParseNetworks(s string) (*Networks, error) {
	var ps []netip.Prefix
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("network %q: %w", v, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("network %q: an address with a zone", v)
			}
			a = a.Unmap()
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", v, err)
		}
		ps = append(ps, p)
	}
	return NewNetworks(ps...), nil
}

// Contains reports whether a is in one of the networks. The zero Addr
// is in none; a zone is ignored.
func (n *Networks) Contains(a netip.Addr) bool {
	if n == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	// The first range starting after a; a is in the one before it, if any.
	lo, hi := 0, len(n.ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.ranges[m].lo.Compare(a) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && a.Compare(n.ranges[lo-1].hi) <= 0
}

// Len returns the number of networks given.
func (n *Networks) Len() int {
	if n == nil {
		return 0
	}
	return len(n.prefixes)
}

// Prefixes returns the networks as given, normalized, in order.
func (n *Networks) Prefixes() []netip.Prefix {
	if n == nil {
		return nil
	}
	return slices.Clone(n.prefixes)
}

// String returns the networks as ParseNetworks reads them.
func (n *Networks) String() string {
	var b strings.Builder
	for i, p := range n.Prefixes() {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// normalPrefix returns p with its host bits cleared and, when it is an
// IPv4-mapped IPv6 network of at least 96 bits, as IPv4.
func normalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// lastAddr returns the last address of p, which is masked.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// touches reports whether an address range starting at lo overlaps r or
// follows it at once, so that the two are one range.
func touches(r addrRange, lo netip.Addr) bool {
	if lo.Compare(r.hi) <= 0 {
		return true
	}
	next := r.hi.Next()
	return next.IsValid() && next == lo
}

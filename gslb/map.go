package gslb

import (
	"cmp"
	"net/netip"
	"slices"
)

// Map maps client networks to their measured latency to each PoP: the
// entry of the longest prefix holding a client's address, IPv4 or IPv6,
// else the default entry. A Map is immutable once built and safe for
// concurrent use; the balancer swaps whole maps.
type Map struct {
	def    []Latency
	v4, v6 prefixTable
	file   MapFile // as given, for GET /api/map
}

// Latency is one PoP's latency from a network, in milliseconds.
type Latency struct {
	PoP string  `json:"pop"`
	MS  float64 `json:"ms"`
}

// prefixTable finds the longest prefix holding an address: one map
// lookup per prefix length in use, longest first.
type prefixTable struct {
	lens []int // distinct prefix lengths, longest first
	nets map[netip.Prefix][]Latency
}

func (t *prefixTable) add(p netip.Prefix, pops []Latency) {
	if t.nets == nil {
		t.nets = make(map[netip.Prefix][]Latency)
	}
	t.nets[p] = pops
	if !slices.Contains(t.lens, p.Bits()) {
		t.lens = append(t.lens, p.Bits())
		slices.SortFunc(t.lens, func(a, b int) int { return cmp.Compare(b, a) })
	}
}

func (t *prefixTable) lookup(addr netip.Addr) (netip.Prefix, []Latency, bool) {
	for _, bits := range t.lens {
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if pops, ok := t.nets[p]; ok {
			return p, pops, true
		}
	}
	return netip.Prefix{}, nil, false
}

// Lookup returns the network holding addr, and its PoPs by increasing
// latency (ties by name); for an address no network holds, or an invalid
// one, it returns the zero Prefix and the default entry, which may be
// empty. IPv4-mapped IPv6 addresses are looked up as IPv4. The slice is
// shared: callers must not modify it.
func (m *Map) Lookup(addr netip.Addr) (netip.Prefix, []Latency) {
	if m == nil {
		return netip.Prefix{}, nil
	}
	addr = addr.Unmap().WithZone("")
	t := &m.v6
	if addr.Is4() {
		t = &m.v4
	}
	if addr.IsValid() {
		if p, pops, ok := t.lookup(addr); ok {
			return p, pops
		}
	}
	return netip.Prefix{}, m.def
}

// Networks returns the number of networks in the map, the default entry
// not included.
func (m *Map) Networks() int {
	if m == nil {
		return 0
	}
	return len(m.v4.nets) + len(m.v6.nets)
}

// File returns the map in its file form. The caller must not modify it.
func (m *Map) File() MapFile {
	if m == nil {
		return MapFile{Networks: []NetworkLatency{}}
	}
	return m.file
}

// sortedLatencies turns a PoP → milliseconds object into a list by
// increasing latency, ties broken by name so that lookups are
// deterministic.
func sortedLatencies(ms map[string]float64) []Latency {
	out := make([]Latency, 0, len(ms))
	for pop, v := range ms {
		out = append(out, Latency{PoP: pop, MS: v})
	}
	slices.SortFunc(out, func(a, b Latency) int {
		if c := cmp.Compare(a.MS, b.MS); c != 0 {
			return c
		}
		return cmp.Compare(a.PoP, b.PoP)
	})
	return out
}

package gslb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"regexp"
)

// ErrInvalidMap is wrapped by the errors of ParseMap and NewMap.
var ErrInvalidMap = errors.New("invalid map")

// MapFile is the JSON form of a Map, as loaded from a file and sent to
// PUT /api/map:
//
//	{"default": {"pop-a": 20, "pop-b": 40},
//	 "networks": [{"cidr": "10.0.0.0/8", "latency_ms": {"pop-a": 5, "pop-b": 30}}]}
//
// A network's entry lists the PoPs its clients may be sent to; a PoP it
// does not list is never chosen for them.
type MapFile struct {
	// Default is the latency to each PoP from networks not listed.
	// Empty means such clients go to the overflow target.
	Default map[string]float64 `json:"default,omitempty"`
	// Networks are the listed networks, IPv4 or IPv6, in any order; the
	// longest prefix holding a client's address wins.
	Networks []NetworkLatency `json:"networks"`
}

// NetworkLatency is one network of a MapFile.
type NetworkLatency struct {
	// CIDR is the network, without host bits: "10.0.0.0/8", "2001:db8::/32".
	CIDR string `json:"cidr"`
	// LatencyMS is the latency to each PoP, in milliseconds.
	LatencyMS map[string]float64 `json:"latency_ms"`
}

// Limits of a map, against mistakes and hostile input.
const (
	maxMapNetworks  = 1 << 20
	maxEntryPoPs    = 256
	maxLatencyMS    = 100_000
	maxMapFileBytes = 64 << 20
)

// validPoPName is the shape of a PoP's name: it labels metrics and logs.
var validPoPName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseMap parses and validates a map file (see MapFile). Unknown fields,
// trailing data, invalid or non-canonical CIDRs, duplicate networks,
// IPv4-mapped IPv6 networks, bad PoP names and latencies outside
// [0, 100000] ms are errors wrapping ErrInvalidMap that say where.
func ParseMap(data []byte) (*Map, error) {
	if len(data) > maxMapFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMap, len(data), maxMapFileBytes)
	}
	var f MapFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMap, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidMap)
	}
	return NewMap(f)
}

// NewMap validates f (see ParseMap) and builds its Map, which keeps f:
// the caller must not modify it afterwards.
func NewMap(f MapFile) (*Map, error) {
	if len(f.Networks) > maxMapNetworks {
		return nil, fmt.Errorf("%w: %d networks, more than %d", ErrInvalidMap, len(f.Networks), maxMapNetworks)
	}
	if err := checkLatencies(f.Default, true); err != nil {
		return nil, fmt.Errorf("%w: default: %w", ErrInvalidMap, err)
	}
	m := &Map{def: sortedLatencies(f.Default)}
	for i, n := range f.Networks {
		p, err := netip.ParsePrefix(n.CIDR)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: networks[%d]: %w", ErrInvalidMap, i, err)
		case p != p.Masked():
			return nil, fmt.Errorf("%w: networks[%d]: %s has host bits set (the network is %s)", ErrInvalidMap, i, n.CIDR, p.Masked())
		case p.Addr().Is4In6():
			return nil, fmt.Errorf("%w: networks[%d]: %s is IPv4-mapped: write the IPv4 network", ErrInvalidMap, i, n.CIDR)
		}
		if err := checkLatencies(n.LatencyMS, false); err != nil {
			return nil, fmt.Errorf("%w: networks[%d] (%s): %w", ErrInvalidMap, i, n.CIDR, err)
		}
		t := &m.v6
		if p.Addr().Is4() {
			t = &m.v4
		}
		if _, dup := t.nets[p]; dup {
			return nil, fmt.Errorf("%w: networks[%d]: %s is listed twice", ErrInvalidMap, i, p)
		}
		t.add(p, sortedLatencies(n.LatencyMS))
	}
	m.file = f
	if len(m.file.Default) == 0 {
		m.file.Default = nil
	}
	if m.file.Networks == nil {
		m.file.Networks = []NetworkLatency{}
	}
	return m, nil
}

// checkLatencies validates one entry's PoP → milliseconds object.
func checkLatencies(ms map[string]float64, mayBeEmpty bool) error {
	if len(ms) == 0 && !mayBeEmpty {
		return errors.New("latency_ms lists no PoP")
	}
	if len(ms) > maxEntryPoPs {
		return fmt.Errorf("%d PoPs, more than %d", len(ms), maxEntryPoPs)
	}
	for pop, v := range ms {
		if !validPoPName.MatchString(pop) {
			return fmt.Errorf("PoP name %q must match %s", pop, validPoPName)
		}
		if math.IsNaN(v) || v < 0 || v > maxLatencyMS {
			return fmt.Errorf("latency to %s is %v ms, want 0 to %d", pop, v, maxLatencyMS)
		}
	}
	return nil
}

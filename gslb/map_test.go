package gslb

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

const testMap = `{
  "default": {"pop-a": 20, "pop-b": 40},
  "networks": [
    {"cidr": "10.0.0.0/8", "latency_ms": {"pop-a": 5, "pop-b": 30}},
    {"cidr": "10.1.0.0/16", "latency_ms": {"pop-b": 3, "pop-a": 9}},
    {"cidr": "10.1.2.3/32", "latency_ms": {"pop-c": 1}},
    {"cidr": "2001:db8::/32", "latency_ms": {"pop-b": 7, "pop-a": 7}},
    {"cidr": "2001:db8:1::/48", "latency_ms": {"pop-a": 2}},
    {"cidr": "0.0.0.0/0", "latency_ms": {"pop-b": 1}}
  ]
}`

func TestMapLookup(t *testing.T) {
	m, err := ParseMap([]byte(testMap))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    string
		network string // "" for the default
		pops    []string
	}{
		{"10.200.0.1", "10.0.0.0/8", []string{"pop-a", "pop-b"}},
		{"10.1.9.9", "10.1.0.0/16", []string{"pop-b", "pop-a"}},
		{"10.1.2.3", "10.1.2.3/32", []string{"pop-c"}},
		{"10.1.2.4", "10.1.0.0/16", []string{"pop-b", "pop-a"}},
		{"::ffff:10.1.2.3", "10.1.2.3/32", []string{"pop-c"}}, // IPv4-mapped
		{"192.0.2.1", "0.0.0.0/0", []string{"pop-b"}},
		{"2001:db8:ffff::1", "2001:db8::/32", []string{"pop-a", "pop-b"}}, // a tie: by name
		{"2001:db8:1::1%eth0", "2001:db8:1::/48", []string{"pop-a"}},
		{"2001:db9::1", "", []string{"pop-a", "pop-b"}},
		{"", "", []string{"pop-a", "pop-b"}}, // unknown address
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			p, pops := m.Lookup(addr)
			got := ""
			if p.IsValid() {
				got = p.String()
			}
			if got != tt.network {
				t.Errorf("network %q, want %q", got, tt.network)
			}
			var names []string
			for _, l := range pops {
				names = append(names, l.PoP)
			}
			if !reflect.DeepEqual(names, tt.pops) {
				t.Errorf("PoPs %v, want %v", names, tt.pops)
			}
		})
	}
	if n := m.Networks(); n != 6 {
		t.Errorf("Networks() = %d, want 6", n)
	}
}

func TestMapEmpty(t *testing.T) {
	var m *Map
	if p, pops := m.Lookup(netip.MustParseAddr("10.0.0.1")); p.IsValid() || pops != nil {
		t.Errorf("nil map: %v %v", p, pops)
	}
	m, err := ParseMap([]byte(`{"networks": []}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, pops := m.Lookup(netip.MustParseAddr("10.0.0.1")); len(pops) != 0 {
		t.Errorf("empty map gave %v", pops)
	}
}

// mapErrorCases are map files ParseMap refuses, and a word of the
// message that says why; they seed the fuzz test.
var mapErrorCases = []struct {
	name, file, says string
}{
	{"not JSON", `{"networks": [`, "unexpected EOF"},
	{"unknown field", `{"networks": [], "defaults": {}}`, "unknown field"},
	{"trailing data", `{"networks": []} {}`, "after the JSON object"},
	{"bad CIDR", `{"networks": [{"cidr": "10.0.0.0/33", "latency_ms": {"a": 1}}]}`, "networks[0]"},
	{"host bits", `{"networks": [{"cidr": "10.1.2.3/8", "latency_ms": {"a": 1}}]}`, "the network is 10.0.0.0/8"},
	{"IPv4-mapped", `{"networks": [{"cidr": "::ffff:10.0.0.0/104", "latency_ms": {"a": 1}}]}`, "IPv4-mapped"},
	{"duplicate", `{"networks": [{"cidr": "10.0.0.0/8", "latency_ms": {"a": 1}}, {"cidr": "10.0.0.0/8", "latency_ms": {"a": 2}}]}`, "listed twice"},
	{"no PoP", `{"networks": [{"cidr": "10.0.0.0/8", "latency_ms": {}}]}`, "lists no PoP"},
	{"bad name", `{"default": {"pop a": 1}, "networks": []}`, "PoP name"},
	{"negative latency", `{"default": {"a": -1}, "networks": []}`, "latency to a"},
	{"huge latency", `{"networks": [{"cidr": "10.0.0.0/8", "latency_ms": {"a": 1e9}}]}`, "latency to a"},
	{"latency not a number", `{"default": {"a": "1"}, "networks": []}`, "cannot unmarshal"},
}

func TestParseMapErrors(t *testing.T) {
	for _, tt := range mapErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMap([]byte(tt.file))
			if !errors.Is(err, ErrInvalidMap) {
				t.Fatalf("error %v does not wrap ErrInvalidMap", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// FuzzParseMap: no input makes ParseMap panic, and a map it accepts
// survives its own file form unchanged.
func FuzzParseMap(f *testing.F) {
	f.Add([]byte(testMap))
	for _, c := range mapErrorCases {
		f.Add([]byte(c.file))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMap(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidMap) {
				t.Fatalf("error %v does not wrap ErrInvalidMap", err)
			}
			return
		}
		again, err := json.Marshal(m.File())
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMap(again)
		if err != nil {
			t.Fatalf("the file form of an accepted map is refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(m.File(), m2.File()) || m.Networks() != m2.Networks() {
			t.Fatalf("map changed through its file form:\n%+v\n%+v", m.File(), m2.File())
		}
		m.Lookup(netip.MustParseAddr("10.1.2.3"))
		m.Lookup(netip.MustParseAddr("2001:db8::1"))
	})
}

package access

import (
	"net/netip"
	"slices"
	"testing"
)

func TestNetworksContains(t *testing.T) {
	n, err := ParseNetworks("10.0.0.0/8, 10.1.0.0/16, 192.0.2.7, 198.51.100.0/25,198.51.100.128/25, 2001:db8::/32, ::ffff:203.0.113.0/120, 0.0.0.0/32, 255.255.255.255/32, fe80::/10")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"9.255.255.255", false},
		{"10.1.2.3", true},
		{"192.0.2.7", true},
		{"192.0.2.6", false},
		{"192.0.2.8", false},
		{"198.51.100.127", true}, // two adjacent halves, merged
		{"198.51.100.128", true},
		{"198.51.101.0", false},
		{"::ffff:10.1.2.3", true}, // IPv4-mapped client
		{"203.0.113.9", true},     // IPv4-mapped network
		{"::ffff:203.0.113.9", true},
		{"0.0.0.0", true},
		{"0.0.0.1", false},
		{"255.255.255.255", true},
		{"2001:db8::1", true},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:db9::", false},
		{"::a00:1", false}, // IPv4-compatible, not mapped: another address
		{"fe80::1%eth0", true},
		{"::", false},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	}
	for _, tt := range tests {
		if got := n.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if n.Contains(netip.Addr{}) {
		t.Error("the zero Addr is in a network")
	}
	var empty *Networks
	if empty.Contains(netip.MustParseAddr("10.0.0.1")) || empty.Len() != 0 || empty.String() != "" {
		t.Error("a nil *Networks is not empty")
	}
	if allocs := testing.AllocsPerRun(100, func() { n.Contains(netip.MustParseAddr("2001:db8::1")) }); allocs != 0 {
		t.Errorf("Contains allocates %v times", allocs)
	}
}

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		in   string
		want string // String(), or "error"
	}{
		{"", ""},
		{" , ", ""},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:0:0/80", "::/80"}, // not all IPv4-mapped: stays IPv6
		{"10.0.0.0/8,2001:db8::/32", "10.0.0.0/8,2001:db8::/32"},
		{"10.0.0.0/33", "error"},
		{"fe80::1%eth0", "error"},
		{"example.com", "error"},
		{"10.0.0.0/8;192.0.2.0/24", "error"},
	}
	for _, tt := range tests {
		n, err := ParseNetworks(tt.in)
		got := "error"
		if err == nil {
			got = n.String()
		}
		if got != tt.want {
			t.Errorf("ParseNetworks(%q) = %q (%v), want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestNewNetworksMerge checks the ranges built against every prefix
// given, on the edges of each.
func TestNewNetworksMerge(t *testing.T) {
	ps := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("10.0.0.128/25"),
		netip.MustParsePrefix("10.0.3.0/24"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/1"),
		netip.MustParsePrefix("8000::/1"), {},
	}
	n := NewNetworks(ps...)
	if n.Len() != len(ps)-1 {
		t.Errorf("Len %d, want %d (the zero Prefix skipped)", n.Len(), len(ps)-1)
	}
	if want := []addrRange{
		{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")},
		{netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
	}; !slices.Equal(n.ranges, want) {
		t.Errorf("ranges %v, want %v", n.ranges, want)
	}
	n = NewNetworks(ps[:4]...)
	if want := []addrRange{
		{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.1.255")},
		{netip.MustParseAddr("10.0.3.0"), netip.MustParseAddr("10.0.3.255")},
	}; !slices.Equal(n.ranges, want) {
		t.Errorf("ranges %v, want %v", n.ranges, want)
	}
}

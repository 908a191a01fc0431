package access

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// clientAddrCases are the table of TestClientAddr and the seeds of
// FuzzClientAddr; the trusted proxies are 10.0.0.0/8 and 2001:db8::/32.
var clientAddrCases = []struct {
	name, remote string
	xff          []string
	want         string
}{
	{"direct", "192.0.2.1:5000", nil, "192.0.2.1"},
	{"direct, header ignored", "192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"},
	{"through a proxy", "10.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
	{"right-most untrusted", "10.0.0.1:5000", []string{"1.1.1.1, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
	{"several header lines", "10.0.0.1:5000", []string{"1.1.1.1", "198.51.100.7", "10.0.0.2"}, "198.51.100.7"},
	{"all trusted", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
	{"proxy, no header", "10.0.0.1:5000", nil, "10.0.0.1"},
	{"garbage ends the walk", "10.0.0.1:5000", []string{"198.51.100.7, bogus, 10.0.0.2"}, "10.0.0.2"},
	{"empty entry ends the walk", "10.0.0.1:5000", []string{"198.51.100.7,"}, "10.0.0.1"},
	{"empty line ends the walk", "10.0.0.1:5000", []string{"198.51.100.7", ""}, "10.0.0.1"},
	{"entry with a port", "10.0.0.1:5000", []string{"198.51.100.7:1234"}, "198.51.100.7"},
	{"entry with a bad port", "10.0.0.1:5000", []string{"198.51.100.7:70000"}, "10.0.0.1"},
	{"IPv6 proxy, IPv6 client", "[2001:db8::1]:443", []string{"2001:db9::7"}, "2001:db9::7"},
	{"IPv6 entry in brackets with a port", "10.0.0.1:5000", []string{"[2001:db9::7]:99"}, "2001:db9::7"},
	{"IPv6 entry in brackets", "10.0.0.1:5000", []string{"[2001:db9::7]"}, "2001:db9::7"},
	{"IPv6 entry, bracket not closed", "10.0.0.1:5000", []string{"[2001:db9::7"}, "10.0.0.1"},
	{"IPv4-mapped peer", "[::ffff:10.0.0.1]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
	{"IPv4-mapped entry", "10.0.0.1:5000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
	{"zone dropped", "[fe80::1%eth0]:5000", nil, "fe80::1"},
	{"peer without port", "192.0.2.1", nil, "192.0.2.1"},
	{"peer unparsable", "@", []string{"198.51.100.7"}, ""},
	{"spaces", "10.0.0.1:5000", []string{"  198.51.100.7 ,10.0.0.9  "}, "198.51.100.7"},
}

func TestClientAddr(t *testing.T) {
	trusted := NewNetworks(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"))
	for _, tt := range clientAddrCases {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := netip.ParseAddr(tt.want)
			if got := ClientAddr(tt.remote, tt.xff, trusted); got != want {
				t.Errorf("ClientAddr = %v, want %v", got, want)
			}
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := RequestAddr(r, trusted); got != want {
				t.Errorf("RequestAddr = %v, want %v", got, want)
			}
		})
	}
	// Nobody trusted: the header is never believed.
	if got := ClientAddr("10.0.0.1:5000", []string{"198.51.100.7"}, nil); got != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("no trusted proxies: %v", got)
	}
	xff := []string{"1.1.1.1, 198.51.100.7, 10.0.0.2", "10.0.0.3"}
	if allocs := testing.AllocsPerRun(100, func() { ClientAddr("10.0.0.1:5000", xff, trusted) }); allocs != 0 {
		t.Errorf("ClientAddr allocates %v times", allocs)
	}
}

// FuzzClientAddr: never panics; the address is the peer's when the peer
// is not trusted, else the peer's or one of the header's; it is never
// IPv4-mapped nor zoned.
func FuzzClientAddr(f *testing.F) {
	for _, tt := range clientAddrCases {
		f.Add(tt.remote, strings.Join(tt.xff, "\n"))
	}
	trusted := NewNetworks(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"))
	f.Fuzz(func(t *testing.T, remote, header string) {
		xff := strings.Split(header, "\n")
		got := ClientAddr(remote, xff, trusted)
		peer := parseHost(remote)
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("%v: mapped or zoned", got)
		}
		if !trusted.Contains(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v, got %v", peer, got)
			}
			return
		}
		if got == peer {
			return
		}
		for _, line := range xff {
			for e := range strings.SplitSeq(line, ",") {
				if parseHost(strings.TrimSpace(e)) == got {
					return
				}
			}
		}
		t.Fatalf("%v is neither the peer nor in the header", got)
	})
}

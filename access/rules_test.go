package access

import (
	"net/netip"
	"testing"
)

func TestRules(t *testing.T) {
	tests := []struct {
		name, allow, deny string
		addr              string
		want              bool
	}{
		{"no rules", "", "", "192.0.2.1", true},
		{"no rules, unknown address", "", "", "", true},
		{"allowed", "10.0.0.0/8", "", "10.1.2.3", true},
		{"not allowed", "10.0.0.0/8", "", "192.0.2.1", false},
		{"allow list, unknown address", "10.0.0.0/8", "", "", false},
		{"denied", "", "192.0.2.0/24", "192.0.2.1", false},
		{"not denied", "", "192.0.2.0/24", "192.0.3.1", true},
		{"deny wins", "10.0.0.0/8", "10.6.6.0/24", "10.6.6.6", false},
		{"allowed around a hole", "10.0.0.0/8", "10.6.6.0/24", "10.6.7.1", true},
		{"deny wins, same network", "10.0.0.0/8", "10.0.0.0/8", "10.0.0.1", false},
		{"IPv6 allowed", "2001:db8::/32", "", "2001:db8::5", true},
		{"IPv6 not allowed", "2001:db8::/32", "", "2001:db9::5", false},
		{"IPv4 list, IPv6 client", "10.0.0.0/8", "", "2001:db8::5", false},
		{"IPv4-mapped client allowed", "10.0.0.0/8", "", "::ffff:10.0.0.1", true},
		{"IPv4-mapped client denied", "", "10.0.0.0/8", "::ffff:10.0.0.1", false},
		{"IPv6 denied, IPv4 client", "", "::/0", "192.0.2.1", true},
		{"everything denied", "", "0.0.0.0/0,::/0", "2001:db8::5", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRules(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			addr, _ := netip.ParseAddr(tt.addr)
			if got := r.Allows(addr); got != tt.want {
				t.Errorf("Allows(%s) = %v, want %v", tt.addr, got, tt.want)
			}
			if err := r.Check(addr); (err == nil) != tt.want || (err != nil && err != ErrAddressDenied) {
				t.Errorf("Check(%s) = %v", tt.addr, err)
			}
		})
	}
	var none *Rules
	if !none.Allows(netip.MustParseAddr("192.0.2.1")) || none.Check(netip.Addr{}) != nil {
		t.Error("a nil *Rules refuses")
	}
	if _, err := ParseRules("10.0.0.0/33", ""); err == nil {
		t.Error("bad allow list: no error")
	}
	if _, err := ParseRules("", "nope"); err == nil {
		t.Error("bad deny list: no error")
	}
}

package pop

import "testing"

func TestSingleRange(t *testing.T) {
	for _, tc := range []struct {
		v        string
		size     int64
		from, to int64
		ok       bool
	}{
		{"bytes=0-99", 1000, 0, 100, true},
		{"bytes=100-", 1000, 100, 1000, true},
		{"bytes=-10", 1000, 990, 1000, true},
		{"bytes=-2000", 1000, 0, 1000, true},
		{"bytes=900-5000", 1000, 900, 1000, true},
		{"bytes= 5-6", 1000, 5, 7, true},
		{"bytes=999-999", 1000, 999, 1000, true},
		{"bytes=1000-", 1000, 0, 0, false},     // not satisfiable: ServeContent's 416
		{"bytes=5-4", 1000, 0, 0, false},       // malformed
		{"bytes=0-9,20-29", 1000, 0, 0, false}, // several
		{"bytes=-0", 1000, 0, 0, false},
		{"bytes=-", 1000, 0, 0, false},
		{"bytes=a-b", 1000, 0, 0, false},
		{"bytes=+1-2", 1000, 1, 3, true}, // strconv takes the sign; still a valid span
		{"items=0-9", 1000, 0, 0, false},
		{"bytes=0-9", 0, 0, 0, false}, // no body
		{"", 1000, 0, 0, false},
	} {
		from, to, ok := singleRange(tc.v, tc.size)
		if ok != tc.ok || ok && (from != tc.from || to != tc.to) {
			t.Errorf("singleRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.v, tc.size, from, to, ok, tc.from, tc.to, tc.ok)
		}
	}
}

// FuzzSingleRange: whatever the header, an accepted span lies within the
// body and is not empty.
func FuzzSingleRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-10", "bytes=5-", "bytes=0-9,20-29", "bytes=99999999999999999999-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		from, to, ok := singleRange(v, size)
		if ok && !(0 <= from && from < to && to <= size) {
			t.Fatalf("singleRange(%q, %d) = [%d, %d)", v, size, from, to)
		}
	})
}

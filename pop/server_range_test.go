package pop

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/golivestream/live/internal/httpserve"
)

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

// TestManyRanges: a Range header of more than httpserve.MaxRanges ranges
// is ignored and the whole segment sent (#18 G: 15 000 one-byte ranges
// made a multipart answer 30 times the size of the segment).
func TestManyRanges(t *testing.T) {
	body := randomBody(60 << 10)
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body)
	})
	_, base := startPoP(t, Config{Origins: []string{origin.URL}})
	c := newClient()
	const seg = "/live/s/e/v0/1.m4s"
	fetchAll(t, c, base+seg) // cached
	for _, tc := range []struct{ ranges, code int }{{2, 206}, {httpserve.MaxRanges, 206}, {httpserve.MaxRanges + 1, 200}, {15000, 200}} {
		spec := make([]string, tc.ranges)
		for i := range spec {
			spec[i] = strconv.Itoa(i) + "-" + strconv.Itoa(i)
		}
		req, _ := http.NewRequest(http.MethodGet, base+seg, nil)
		req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
		resp, got := doAll(t, c, req)
		if resp.StatusCode != tc.code {
			t.Errorf("%d ranges: %d, want %d", tc.ranges, resp.StatusCode, tc.code)
		}
		if tc.code == 200 && !bytes.Equal(got, body) {
			t.Errorf("%d ranges: %d bytes, want the whole %d", tc.ranges, len(got), len(body))
		}
	}
}

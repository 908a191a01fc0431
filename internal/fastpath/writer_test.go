package fastpath

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

// TestAppendHeaderLines: the lines of a header block, values cleaned as
// the writer cleans the map's; Content-Length left to the map; names the
// writer keeps for itself refused.
func TestAppendHeaderLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		ok   bool
		want []string // the lines, in any order
	}{
		{"plain", http.Header{"Content-Type": {"video/mp4"}, "X-Two": {"a", "b"}}, true,
			[]string{"Content-Type: video/mp4", "X-Two: a", "X-Two: b"}},
		{"no Content-Length", http.Header{"Content-Length": {"9"}, "Etag": {`"e"`}}, true, []string{`Etag: "e"`}},
		{"CR and LF made spaces", http.Header{"X-V": {"a\r\nX-Injected: b"}}, true, []string{"X-V: a  X-Injected: b"}},
		{"empty", http.Header{}, true, nil},
		{"Date", http.Header{"Date": {"x"}, "Etag": {`"e"`}}, false, nil},
		{"Connection", http.Header{"Connection": {"close"}}, false, nil},
		{"Transfer-Encoding", http.Header{"Transfer-Encoding": {"chunked"}}, false, nil},
	} {
		b, ok := AppendHeaderLines([]byte("prefix\r\n"), tc.h)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.name, ok, tc.ok)
		}
		rest, found := strings.CutPrefix(string(b), "prefix\r\n")
		if !found {
			t.Fatalf("%s: %q lost what it was appended to", tc.name, b)
		}
		var lines []string
		if rest != "" {
			if !strings.HasSuffix(rest, "\r\n") {
				t.Errorf("%s: %q does not end a line", tc.name, rest)
			}
			lines = strings.Split(strings.TrimSuffix(rest, "\r\n"), "\r\n")
		}
		sort.Strings(lines)
		if strings.Join(lines, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: lines %q, want %q", tc.name, lines, tc.want)
		}
	}
}

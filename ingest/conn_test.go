package ingest

import (
	"errors"
	"strings"
	"testing"
)

var streamPathCases = []struct {
	path, name string
	ok         bool
}{
	{"/live/cam1", "cam1", true},
	{"/live/A-b_9", "A-b_9", true},
	{"/live/" + strings.Repeat("x", 64), strings.Repeat("x", 64), true},
	{"/live/" + strings.Repeat("x", 65), "", false},
	{"/live/", "", false},
	{"/live", "", false},
	{"/other/cam1", "", false},
	{"/live/cam.1", "", false},
	{"/live/../etc", "", false},
	{"/live/a/b", "", false},
	{"/live/caf\u00e9", "", false},
	{"/live/a b", "", false},
	{"/live/a%2Fb", "", false},
	{"/livecam1", "", false},
}

func TestParseStreamPath(t *testing.T) {
	for _, tc := range streamPathCases {
		t.Run(tc.path, func(t *testing.T) {
			name, err := ParseStreamPath("live", tc.path)
			if tc.ok {
				if err != nil || name != tc.name {
					t.Errorf("got %q, %v; want %q", name, err, tc.name)
				}
				return
			}
			if !errors.Is(err, ErrBadName) {
				t.Errorf("got %q, %v; want ErrBadName", name, err)
			}
		})
	}
}

// FuzzParseStreamPath checks that whatever a publisher names, an accepted
// name is safe to use as one path segment.
func FuzzParseStreamPath(f *testing.F) {
	for _, tc := range streamPathCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, err := ParseStreamPath("live", path)
		if err != nil {
			return
		}
		if len(name) == 0 || len(name) > 64 || strings.ContainsAny(name, "/.%\\ \x00") || path != "/live/"+name {
			t.Fatalf("accepted %q as %q", path, name)
		}
	})
}

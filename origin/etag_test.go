package origin

import (
	"strings"
	"testing"
)

// TestLadderETags: the segments of the ladder, which each origin's
// encoder makes on its own, have ETags that name the process that made
// them, so that a cache does not take two origins' bytes for the same
// object (pop: a broken fill is continued from a backup only under the
// same ETag); those of the source and audio renditions, the same bytes on
// every origin of the epoch, have one ETag everywhere.
func TestLadderETags(t *testing.T) {
	a := &stream{instance: instance{epoch: "mf0epoch"}, env: &streamEnv{ladderTag: newLadderTag()}}
	b := &stream{instance: instance{epoch: "mf0epoch"}, env: &streamEnv{ladderTag: newLadderTag()}}
	for _, tc := range []struct {
		r          rendition
		sameOnBoth bool
	}{
		{rendition{id: "v0"}, true},
		{rendition{id: "a0"}, true},
		{rendition{id: "v1", ladder: true}, false},
	} {
		ea, eb := a.segmentETag(&tc.r, 7), b.segmentETag(&tc.r, 7)
		if (ea == eb) != tc.sameOnBoth {
			t.Errorf("%s: ETags %s and %s on two origins, want the same: %v", tc.r.id, ea, eb, tc.sameOnBoth)
		}
		if !strings.HasPrefix(ea, `"mf0epoch-`+tc.r.id+`-7`) || ea != a.segmentETag(&tc.r, 7) {
			t.Errorf("%s: ETag %s", tc.r.id, ea)
		}
	}
}

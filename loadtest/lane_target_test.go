package loadtest

import (
	"net/url"
	"strings"
	"testing"
)

var targetBases = []string{
	"http://h:8080/live/s/v/index.m3u8?token=a",
	"http://h/live/s/manifest.mpd",
	"http://h",
	"https://h/a%20b/c;p/index.m3u8",
}

var targetRefs = []string{
	"", "0.m4s", "v/3.m4s?token=b", "/live/x/1.m4s", "seg-$1!'()*+,;=@~_.m4s", "a%2Fb.m4s", "%41.m4s",
	"../a/init.mp4", "./0.m4s", "a/./b", "a/..", ".", "..", "?q", "#f", "0.m4s#f", "//other/x", "http://other/x",
	"a:b", "a b", "a%zz", "a?b/../c", "a?./.", "",
}

// TestAppendTarget: the request target a lane builds without parsing is
// the one url.URL.Parse resolves, and refs it cannot build that way are
// left to it.
func TestAppendTarget(t *testing.T) {
	for _, b := range targetBases {
		for _, ref := range targetRefs {
			checkTarget(t, b, ref)
		}
	}
	base := mustParse(t, targetBases[0])
	for _, c := range []struct {
		ref  string
		want bool
	}{{"0.m4s", true}, {"v/3.m4s?token=b", true}, {"/live/x/1.m4s", true}, {"../a/init.mp4", false}, {"http://other/x", false}} {
		if _, ok := appendTarget(nil, base, c.ref); ok != c.want {
			t.Errorf("ref %q: built without parsing %v, want %v", c.ref, ok, c.want)
		}
	}
}

func checkTarget(t *testing.T, rawBase, ref string) {
	t.Helper()
	base, err := url.Parse(rawBase)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := appendTarget([]byte("GET "), base, ref)
	if !ok {
		return
	}
	u, err := base.Parse(ref)
	if err != nil {
		t.Fatalf("base %s, ref %q: built %q, but url.Parse fails: %v", rawBase, ref, got, err)
	}
	if want := "GET " + u.RequestURI(); string(got) != want || u.Host != base.Host {
		t.Fatalf("base %s, ref %q: built %q, url.Parse gives %q on %s", rawBase, ref, got, want, u.Host)
	}
}

func FuzzAppendTarget(f *testing.F) {
	for i, ref := range targetRefs {
		f.Add(i, ref)
	}
	f.Fuzz(func(t *testing.T, i int, ref string) {
		if i < 0 || strings.ContainsRune(ref, 0) {
			return
		}
		checkTarget(t, targetBases[i%len(targetBases)], ref)
	})
}

package layout

import (
	"strings"
	"testing"
)

var parseCases = []struct {
	path string
	want Object
	ok   bool
}{
	{"/live/demo/index.m3u8", Object{Kind: Multivariant, Stream: "demo"}, true},
	{"/live/demo/manifest.mpd", Object{Kind: MPD, Stream: "demo"}, true},
	{"/live/Cam_1-x/mx5p2ya4/v0/index.m3u8", Object{Kind: MediaPlaylist, Stream: "Cam_1-x", Epoch: "mx5p2ya4", Rendition: "v0", Dir: "/live/Cam_1-x/mx5p2ya4/v0/"}, true},
	{"/live/demo/mx5p2ya4/a0/init.mp4", Object{Kind: Init, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "a0", Dir: "/live/demo/mx5p2ya4/a0/"}, true},
	{"/live/demo/mx5p2ya4/v12/86.m4s", Object{Kind: Segment, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "v12", Number: 86, Dir: "/live/demo/mx5p2ya4/v12/"}, true},
	{"/live/demo/mx5p2ya4/v0/0.m4s", Object{Kind: Segment, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "v0", Dir: "/live/demo/mx5p2ya4/v0/"}, true},

	{"/live/demo/mx5p2ya4/v0/86.3.m4s", Object{Kind: Part, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "v0", Number: 86, Part: 3, Dir: "/live/demo/mx5p2ya4/v0/"}, true},
	{"/live/demo/mx5p2ya4/v0/86.0.m4s", Object{Kind: Part, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "v0", Number: 86, Dir: "/live/demo/mx5p2ya4/v0/"}, true},
	{"/live/demo/mx5p2ya4/v0/86.03.m4s", Object{}, false}, // a part with a leading zero
	{"/live/demo/mx5p2ya4/v0/86..m4s", Object{}, false},
	{"/live/demo/mx5p2ya4/v0/86.1000.m4s", Object{}, false}, // beyond MaxParts
	{"/live/demo/mx5p2ya4/v0/86.1.2.m4s", Object{}, false},

	// One spelling per object.
	{"/live/demo/mx5p2ya4/v0/0086.m4s", Object{}, false},   // leading zeros
	{"/live/demo/mx5p2ya4/v0/%38%36.m4s", Object{}, false}, // escapes
	{"/live/demo/mx5p2ya4/v0/+86.m4s", Object{}, false},    // a sign
	{"/live/demo/mx5p2ya4/v00/86.m4s", Object{}, false},    // rendition number with a leading zero
	{"/live/demo/0mx5p2ya4/v0/86.m4s", Object{}, false},    // epoch with a leading zero
	{"/live/demo/MX5P2YA4/v0/86.m4s", Object{}, false},     // upper-case epoch
	{"/live/demo/mx5p2ya4/V0/86.m4s", Object{}, false},     // upper-case rendition
	{"/live/de%6Do/index.m3u8", Object{}, false},           // an escaped name
	{"/live/demo//index.m3u8", Object{}, false},            // an empty segment
	{"/live/demo/mx5p2ya4/v0//86.m4s", Object{}, false},    // an empty segment
	{"/live/demo/mx5p2ya4/v0/86.m4s/", Object{}, false},    // a trailing slash
	{"/live/demo/./index.m3u8", Object{}, false},           // dot segments
	{"/live/demo/mx5p2ya4/v0/../v1/86.m4s", Object{}, false},
	{"/live/demo/mx5p2ya4/v0/18446744073709551616.m4s", Object{}, false}, // beyond uint64
	{"/live/demo/zzzzzzzzzzzzz/v0/1.m4s", Object{}, false},               // beyond int64
	{"/live/demo/mx5p2ya4/v/1.m4s", Object{}, false},                     // rendition without a number
	{"/live/demo/mx5p2ya4/0/1.m4s", Object{}, false},                     // rendition without letters
	{"/live/demo/mx5p2ya4/v10000/1.m4s", Object{}, false},                // rendition number too long
	{"/live/demo/mx5p2ya4/v0/1.ts", Object{}, false},
	{"/live/demo/mx5p2ya4/v0/.m4s", Object{}, false},
	{"/live/demo/mx5p2ya4/v0/index.m3u8x", Object{}, false},
	{"/live/demo/index.m3u", Object{}, false},
	{"/live/demo/mx5p2ya4/index.m3u8", Object{}, false}, // no rendition
	{"/live/" + strings.Repeat("a", 65) + "/index.m3u8", Object{}, false},
	{"/live/" + strings.Repeat("a", 64) + "/index.m3u8", Object{Kind: Multivariant, Stream: strings.Repeat("a", 64)}, true},
	{"/live/a.b/index.m3u8", Object{}, false},
	{"/live//index.m3u8", Object{}, false},
	{"/vod/demo/index.m3u8", Object{}, false},

	// Keys of encrypted streams.
	{"/live/demo/license", Object{Kind: License, Stream: "demo"}, true},
	{"/live/demo/keys/0f1e2d3c4b5a69788796a5b4c3d2e1f0", Object{Kind: Key, Stream: "demo", KID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, true},
	{"/live/demo/keys/0F1E2D3C4B5A69788796A5B4C3D2E1F0", Object{}, false},     // upper case: another spelling
	{"/live/demo/keys/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Object{}, false}, // a UUID: another spelling
	{"/live/demo/keys/0f1e2d3c4b5a69788796a5b4c3d2e1f", Object{}, false},
	{"/live/demo/keys/0f1e2d3c4b5a69788796a5b4c3d2e1f0/", Object{}, false},
	{"/live/demo/keys/0f1e2d3c4b5a69788796a5b4c3d2e1f0/x", Object{}, false},
	{"/live/demo/keys/", Object{}, false},
	{"/live/demo/license/x", Object{}, false},
	{"/vod/demo/license", Object{}, false},

	// DVR windows.
	{"/live/demo/dvr.m3u8", Object{Kind: DVRMultivariant, Stream: "demo"}, true},
	{"/live/demo/dvr.mpd", Object{Kind: DVRMPD, Stream: "demo"}, true},
	{"/live/demo/mx5p2ya4/v0/dvr.m3u8", Object{Kind: DVRMediaPlaylist, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "v0", Dir: "/live/demo/mx5p2ya4/v0/"}, true},
	{"/live/demo/mx5p2ya4/dvr.m3u8", Object{}, false},
	{"/live/demo/dvr.m3u", Object{}, false},

	// VODs and clips.
	{"/vod/demo/mx5p2ya4/index.m3u8", Object{Kind: VODMultivariant, Stream: "demo", Epoch: "mx5p2ya4"}, true},
	{"/vod/demo/mx5p2ya4/manifest.mpd", Object{Kind: VODMPD, Stream: "demo", Epoch: "mx5p2ya4"}, true},
	{"/vod/demo/mx5p2ya4/a0/index.m3u8", Object{Kind: VODMediaPlaylist, Stream: "demo", Epoch: "mx5p2ya4", Rendition: "a0", Dir: "/vod/demo/mx5p2ya4/a0/"}, true},
	{"/vod/demo/clips/Ab_3-x/index.m3u8", Object{Kind: VODMultivariant, Stream: "demo", Clip: "Ab_3-x"}, true},
	{"/vod/demo/clips/Ab_3-x/manifest.mpd", Object{Kind: VODMPD, Stream: "demo", Clip: "Ab_3-x"}, true},
	{"/vod/demo/clips/Ab_3-x/v1/index.m3u8", Object{Kind: VODMediaPlaylist, Stream: "demo", Clip: "Ab_3-x", Rendition: "v1", Dir: "/vod/demo/clips/Ab_3-x/v1/"}, true},
	{"/vod/demo/mx5p2ya4/v0/1.m4s", Object{}, false},    // files live under /live/ only
	{"/vod/demo/mx5p2ya4/v0/init.mp4", Object{}, false}, // idem
	{"/vod/demo/mx5p2ya4/v0/dvr.m3u8", Object{}, false},
	{"/vod/demo/mx5p2ya4/dvr.mpd", Object{}, false},
	{"/vod/demo/0x5p2ya4/index.m3u8", Object{}, false}, // not an epoch
	{"/vod/demo/clips/a.b/index.m3u8", Object{}, false},
	{"/vod/demo/clips/index.m3u8", Object{}, false},
	{"/vod/demo/clips//index.m3u8", Object{}, false},
	{"/vod/demo/mx5p2ya4/V0/index.m3u8", Object{}, false},
	{"/vod/demo/mx5p2ya4/v0/index.m3u8/", Object{}, false},
	{"/vod/demo/mx5p2ya4/v0/x/index.m3u8", Object{}, false},
	{"/vod/demo/mx5p2ya4/", Object{}, false},
	{"/vod/de%6Do/mx5p2ya4/index.m3u8", Object{}, false},
	{"/vod/", Object{}, false},
	{"/live/", Object{}, false},
	{"", Object{}, false},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.path, func(t *testing.T) {
			got, ok := Parse(tc.path)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseAllocates(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Parse("/live/demo/mx5p2ya4/v12/86.m4s")
		ParseDirectives("_HLS_msn=12&_HLS_part=3&token=abc")
	})
	if allocs != 0 {
		t.Errorf("Parse and ParseDirectives allocate %v times, want 0", allocs)
	}
}

var directiveCases = []struct {
	query, canonical string
	err              bool
}{
	{"", "", false},
	{"token=abc&_=123", "", false},
	{"_HLS_msn=12", "_HLS_msn=12", false},
	{"_HLS_part=3&_HLS_msn=12", "_HLS_msn=12&_HLS_part=3", false},
	{"_HLS_skip=YES&_HLS_msn=12&token=x", "_HLS_msn=12&_HLS_skip=YES", false},
	{"_HLS_skip=v2", "_HLS_skip=v2", false},
	{"_HLS_msn=0", "_HLS_msn=0", false},
	{"_HLS_msn=012", "", true},
	{"_HLS_msn=", "", true},
	{"_HLS_msn", "", true},
	{"_HLS_msn=-1", "", true},
	{"_HLS_msn=1e3", "", true},
	{"_HLS_msn=%31", "", true},
	{"_HLS_msn=1&_HLS_msn=1", "", true},
	{"_HLS_part=1", "", true}, // without _HLS_msn
	{"_HLS_msn=1&_HLS_part=01", "", true},
	{"_HLS_skip=yes", "", true},
	{"_HLS_skip=YES&_HLS_skip=YES", "", true},
	{"_HLS%5Fmsn=12", "", false}, // not a directive as spelled: ignored
}

func TestParseDirectives(t *testing.T) {
	for _, tc := range directiveCases {
		t.Run(tc.query, func(t *testing.T) {
			d, err := ParseDirectives(tc.query)
			if (err != nil) != tc.err {
				t.Fatalf("ParseDirectives(%q) error %v, want error %v", tc.query, err, tc.err)
			}
			if got := d.Query(); got != tc.canonical {
				t.Errorf("ParseDirectives(%q).Query() = %q, want %q", tc.query, got, tc.canonical)
			}
		})
	}
}

// FuzzParse: whatever Parse accepts is canonical: its parts rebuild the
// path, and the number and directives read back as they were written.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.path, "")
	}
	for _, tc := range directiveCases {
		f.Add("/live/demo/mx5p2ya4/v0/index.m3u8", tc.query)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		if o, ok := Parse(path); ok {
			var rebuilt string
			switch o.Kind {
			case Multivariant:
				rebuilt = Prefix + o.Stream + "/index.m3u8"
			case MPD:
				rebuilt = Prefix + o.Stream + "/manifest.mpd"
			case MediaPlaylist:
				rebuilt = o.Dir + "index.m3u8"
			case Init:
				rebuilt = o.Dir + "init.mp4"
			case Segment:
				rebuilt = o.Dir + SegmentPath(o.Number)
			case Part:
				rebuilt = o.Dir + PartPath(o.Number, o.Part)
			case DVRMultivariant:
				rebuilt = Prefix + o.Stream + "/dvr.m3u8"
			case DVRMPD:
				rebuilt = Prefix + o.Stream + "/dvr.mpd"
			case DVRMediaPlaylist:
				rebuilt = o.Dir + "dvr.m3u8"
			case VODMultivariant:
				rebuilt = vodDir(o) + "index.m3u8"
			case VODMPD:
				rebuilt = vodDir(o) + "manifest.mpd"
			case VODMediaPlaylist:
				rebuilt = vodDir(o) + o.Rendition + "/index.m3u8"
				if o.Dir != vodDir(o)+o.Rendition+"/" {
					t.Errorf("Parse(%q): Dir %q", path, o.Dir)
				}
			case License:
				rebuilt = Prefix + o.Stream + "/" + LicenseFile
			case Key:
				rebuilt = Prefix + o.Stream + "/" + KeysDir + "/" + o.KID
			default:
				t.Fatalf("Parse(%q) ok with kind %v", path, o.Kind)
			}
			if rebuilt != path {
				t.Errorf("Parse(%q) = %+v, which spells %q", path, o, rebuilt)
			}
			if (o.Epoch == "") == (o.Clip == "") && o.Kind >= VODMultivariant && !o.Kind.IsKey() {
				t.Errorf("Parse(%q) = %+v: a VOD of an epoch or of a clip", path, o)
			}
			if o.Dir != "" && o.Kind != VODMediaPlaylist && o.Dir != Prefix+o.Stream+"/"+o.Epoch+"/"+o.Rendition+"/" {
				t.Errorf("Parse(%q): Dir %q", path, o.Dir)
			}
		}
		d, err := ParseDirectives(query)
		if err != nil {
			return
		}
		again, err := ParseDirectives(d.Query())
		if err != nil || again != d {
			t.Errorf("directives %+v of %q read back as %+v, %v", d, query, again, err)
		}
	})
}

// vodDir is the directory of the VOD manifests o names.
func vodDir(o Object) string {
	if o.Clip != "" {
		return VODPrefix + o.Stream + "/" + ClipsDir + "/" + o.Clip + "/"
	}
	return VODPrefix + o.Stream + "/" + o.Epoch + "/"
}

func TestSplitToken(t *testing.T) {
	for _, tc := range []struct {
		path, token, rest string
		ok                bool
	}{
		{"/t/eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZW1vIn0.sig_-x/live/demo/index.m3u8", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZW1vIn0.sig_-x", "/live/demo/index.m3u8", true},
		{"/t/abc/live/demo/e/v0/1.m4s", "abc", "/live/demo/e/v0/1.m4s", true},
		{"/t//live/demo/index.m3u8", "", "", false},
		{"/t/abc/vod/demo/mx5p2ya4/index.m3u8", "abc", "/vod/demo/mx5p2ya4/index.m3u8", true},
		{"/t/abc/vods/demo/index.m3u8", "", "", false},
		{"/t/a%62c/live/demo/index.m3u8", "", "", false},
		{"/t/abc", "", "", false},
		{"/live/demo/index.m3u8", "", "", false},
	} {
		tok, rest, ok := SplitToken(tc.path)
		if ok != tc.ok || ok && (tok != tc.token || rest != tc.rest) {
			t.Errorf("SplitToken(%q) = %q, %q, %v; want %q, %q, %v", tc.path, tok, rest, ok, tc.token, tc.rest, tc.ok)
		}
	}
}

package loadtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testMultivariant = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="a1",AUTOSELECT=YES,CHANNELS="2",URI="e/a1/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="a0",AUTOSELECT=YES,DEFAULT=YES,CHANNELS="2",URI="e/a0/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,AUDIO="audio"
e/v1/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=981000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,AUDIO="audio"
e/v0/index.m3u8
`

const testMedia = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-MAP:URI="init.mp4"
#EXTINF:1.00000,
40.m4s
#EXTINF:1.00000,
41.m4s
#EXTINF:0.50000,
42.m4s
#EXTINF:1.00000,
43.m4s
`

const testMPD = `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT0.5S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <Representation id="v0" bandwidth="856000">
        <SegmentTemplate media="e/$RepresentationID$/$Number$.m4s" initialization="e/$RepresentationID$/init.mp4" startNumber="7" timescale="90000">
          <SegmentTimeline><S t="630000" d="90000" r="2"/><S d="45000"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
      <Representation id="v1" bandwidth="3000000">
        <SegmentTemplate media="e/$RepresentationID$/$Number%05d$.m4s" initialization="e/$RepresentationID$/init.mp4" startNumber="7" timescale="90000">
          <SegmentTimeline><S t="630000" d="90000" r="3"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" mimeType="audio/mp4">
      <SegmentTemplate media="e/$RepresentationID$/$Number$.m4s" initialization="e/$RepresentationID$/init.mp4" startNumber="7" timescale="48000">
        <SegmentTimeline><S t="0" d="49152" r="3"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="a0" bandwidth="125000"/>
    </AdaptationSet>
  </Period>
</MPD>`

func TestParseMultivariant(t *testing.T) {
	e, err := parseMultivariant([]byte(testMultivariant))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.variants) != 2 {
		t.Fatalf("%d variants", len(e.variants))
	}
	v := e.variants[0]
	if v.bandwidth != 3000000 || v.id != "e/v1/index.m3u8" || v.audio != "e/a0/index.m3u8" {
		t.Errorf("variant %+v; want the DEFAULT audio rendition", v)
	}
}

func TestParseMedia(t *testing.T) {
	l, err := parseMedia([]byte(testMedia))
	if err != nil {
		t.Fatal(err)
	}
	if l.first != 40 || len(l.durations) != 4 || l.init != "init.mp4" || l.ended || l.refresh != time.Second {
		t.Errorf("list %+v", l)
	}
	if !l.listed(43) || l.listed(44) || l.listed(39) {
		t.Error("listed() wrong at the edges")
	}
	if l.uri(42) != "42.m4s" || l.duration(42) != 500*time.Millisecond {
		t.Errorf("segment 42: %s %v", l.uri(42), l.duration(42))
	}
	if l.liveStart() != 41 {
		t.Errorf("live start %d, want 41: three segments behind the edge", l.liveStart())
	}
	ended, err := parseMedia([]byte(testMedia + "#EXT-X-ENDLIST\n"))
	if err != nil || !ended.ended {
		t.Errorf("ENDLIST not seen: %v", err)
	}
}

func TestParseMPD(t *testing.T) {
	e, err := parseMPD([]byte(testMPD))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.variants) != 2 || e.variants[0].id != "v0" || e.variants[0].audio != "a0" || e.variants[1].bandwidth != 3000000 {
		t.Fatalf("variants %+v", e.variants)
	}
	v0 := e.lists["v0"]
	if v0.first != 7 || len(v0.durations) != 4 || v0.duration(10) != 500*time.Millisecond || v0.refresh != 500*time.Millisecond || v0.ended {
		t.Errorf("v0 %+v", v0)
	}
	if v0.uri(8) != "e/v0/8.m4s" || v0.init != "e/v0/init.mp4" {
		t.Errorf("v0 uri %s init %s", v0.uri(8), v0.init)
	}
	if got := e.lists["v1"].uri(8); got != "e/v1/00008.m4s" {
		t.Errorf("v1 uri %s", got)
	}
	a0 := e.lists["a0"]
	if a0 == nil || a0.duration(7) != 1024*time.Millisecond || a0.uri(9) != "e/a0/9.m4s" {
		t.Errorf("a0 (template on the AdaptationSet) %+v", a0)
	}
	static, err := parseMPD([]byte(strings.Replace(testMPD, `type="dynamic" minimumUpdatePeriod="PT0.5S"`, `type="static"`, 1)))
	if err != nil || !static.lists["v0"].ended {
		t.Errorf("a static MPD is not ended: %v", err)
	}
}

// TestParseOriginGolden parses what our origin writes (its golden files).
func TestParseOriginGolden(t *testing.T) {
	dir := filepath.Join("..", "testdata", "golden")
	for _, name := range []string{"live_index.m3u8", "live_v0.m3u8", "live_a0.m3u8", "live_manifest.mpd", "ended_v0.m3u8", "ended_manifest.mpd", "sliding_manifest.mpd"} {
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, "index.m3u8"):
			_, err = parseMultivariant(body)
		case strings.HasSuffix(name, ".m3u8"):
			var l *segmentList
			if l, err = parseMedia(body); err == nil && l.ended != strings.HasPrefix(name, "ended") {
				t.Errorf("%s: ended %v", name, l.ended)
			}
		default:
			var e *entry
			if e, err = parseMPD(body); err == nil && (len(e.variants) != 1 || e.variants[0].audio == "") {
				t.Errorf("%s: variants %+v", name, e.variants)
			}
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

var badManifests = []string{
	"",
	"#EXTM3U\n",
	"<MPD></MPD>",
	`<MPD><Period><AdaptationSet contentType="video"><Representation id="v"><SegmentTemplate media="$Time$.m4s"><SegmentTimeline><S d="1"/></SegmentTimeline></SegmentTemplate></Representation></AdaptationSet></Period></MPD>`,
	`<MPD><Period><AdaptationSet contentType="video"><Representation id="v"><SegmentTemplate media="$Number$.m4s"><SegmentTimeline><S d="1" r="99999999"/></SegmentTimeline></SegmentTemplate></Representation></AdaptationSet></Period></MPD>`,
	`<MPD minimumUpdatePeriod="P1Y"><Period/></MPD>`,
	"<MPD><Period>",
}

func TestParseBadManifests(t *testing.T) {
	for _, in := range badManifests {
		if _, err := parseMPD([]byte(in)); err == nil {
			t.Errorf("parseMPD(%q) succeeded", in)
		}
		if _, err := parseMultivariant([]byte(in)); err == nil {
			t.Errorf("parseMultivariant(%q) succeeded", in)
		}
	}
}

func TestISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"PT1S": time.Second, "PT0.5S": 500 * time.Millisecond, "PT1M2S": 62 * time.Second, "P1DT1H": 25 * time.Hour} {
		if got, err := parseISODuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "1S", "PT", "PTS", "P1Y", "PT1D", "PT-1S", "PT1X"} {
		if _, err := parseISODuration(in); err == nil && in != "PT" {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestChoose(t *testing.T) {
	vs := []variant{{bandwidth: 3000, id: "mid"}, {bandwidth: 1000, id: "low"}, {bandwidth: 6000, id: "high"}}
	tests := []struct {
		policy    string
		bandwidth int
		want      string
	}{
		{"", 0, "high"}, {"fit", 4000, "mid"}, {"fit", 3000, "mid"}, {"fit", 500, "low"},
		{"lowest", 0, "low"}, {"highest", 10, "high"},
	}
	for _, tt := range tests {
		if got := choose(vs, tt.policy, tt.bandwidth); got.id != tt.want {
			t.Errorf("%q at %d b/s: %s, want %s", tt.policy, tt.bandwidth, got.id, tt.want)
		}
	}
	if got := choose(vs, "random", 0); got.id == "" {
		t.Error("random chose nothing")
	}
}

func TestMemo(t *testing.T) {
	m := newMemo()
	calls := 0
	parse := func(b []byte) (*segmentList, error) { calls++; return parseMedia(b) }
	a, fresh, err := parseMemo(m, "media", []byte(testMedia), parse)
	if err != nil || !fresh {
		t.Fatal(fresh, err)
	}
	b, fresh, _ := parseMemo(m, "media", []byte(testMedia), parse)
	if a != b || calls != 1 || fresh {
		t.Errorf("the same body was parsed %d times (fresh %v)", calls, fresh)
	}
	if _, _, err := parseMemo(m, "mpd", []byte(testMedia), parseMPD); err == nil {
		t.Error("a body memoized as one kind was returned for another")
	}
}

func FuzzParseManifests(f *testing.F) {
	for _, s := range append([]string{testMultivariant, testMedia, testMPD}, badManifests...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := parseMPD(data); err == nil {
			for _, v := range e.variants {
				l := e.lists[v.id]
				if l == nil {
					t.Fatalf("variant %q without list", v.id)
				}
				if len(l.durations) > 0 {
					l.uri(l.liveStart())
				}
			}
		}
		if e, err := parseMultivariant(data); err == nil && len(e.variants) == 0 {
			t.Fatal("no variants and no error")
		}
		if l, err := parseMedia(data); err == nil && len(l.durations) > 0 {
			n := l.liveStart()
			if !l.listed(n) {
				t.Fatalf("live start %d not listed", n)
			}
			l.uri(n)
		}
	})
}

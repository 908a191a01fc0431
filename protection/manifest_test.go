package protection

import (
	"bytes"
	"strings"
	"testing"

	"github.com/golivestream/live/internal/mpdtest"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/mp4"
)

// drmKey is testKey with Widevine, PlayReady and FairPlay signalling, as a
// CPIX response gives it.
func drmKey(tb testing.TB) Key {
	tb.Helper()
	k := testKey
	pr, err := mp4.NewPsshBox(string(SystemPlayReady), nil, []byte("<WRMHEADER/>"))
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	if err := pr.Encode(&b); err != nil {
		tb.Fatal(err)
	}
	k.Systems = []System{
		{ID: SystemWidevine, PSSH: widevinePSSH(tb, k.KID), HLSURI: "data:text/plain;base64,AAAA"},
		{ID: SystemPlayReady, PSSH: b.Bytes(), HLSURI: "data:text/plain;charset=UTF-16;base64,BBBB"},
		{ID: SystemFairPlay, HLSURI: "skd://" + k.KID.Hex()},
	}
	return k
}

// TestHLSKeyTags: the EXT-X-KEY tags of each key format, golden.
func TestHLSKeyTags(t *testing.T) {
	tags, err := HLSKeyTags(drmKey(t), HLSKeys{
		IdentityURI: "https://origin.example/keys/cam/" + testKey.KID.String(),
		ClearKeyURI: "https://origin.example/license/cam?kid=" + testKey.KID.Hex(),
		Systems:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hls_keys.m3u8", []byte(strings.Join(tags, "\n")+"\n"))

	for _, o := range []HLSKeys{
		{},
		{IdentityURI: "k\"\n#EXT-X-ENDLIST"},
		{ClearKeyURI: "k\r"},
	} {
		if _, err := HLSKeyTags(testKey, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestDASHContentProtection: the elements, embedded in an MPD written by
// dash-mpd as the origin writes its MPDs, are golden and valid against the
// MPD schema; the ClearKey license URL is a dashif:Laurl, the prefix that
// dash.js matches.
func TestDASHContentProtection(t *testing.T) {
	cps, err := DASHContentProtection(drmKey(t), DASHKeys{LicenseURL: "https://origin.example/license/cam", Systems: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 4 {
		t.Fatalf("%d elements, want mp4protection, ClearKey, Widevine, PlayReady", len(cps))
	}
	m := mpd.NewMPD("static")
	m.Profiles = mpd.ListOfProfilesType(mpd.PROFILE_LIVE)
	dur := mpd.Duration(2_000_000_000)
	m.MediaPresentationDuration = &dur
	m.MinBufferTime = &dur
	p := mpd.NewPeriod()
	p.Id = "p0"
	m.AppendPeriod(p)
	as := mpd.NewAdaptationSet()
	as.ContentType = "video"
	as.MimeType = "video/mp4"
	as.ContentProtections = cps
	p.AppendAdaptationSet(as)
	rep := mpd.NewRepresentation()
	rep.Id = "v0"
	rep.Bandwidth = 1000000
	rep.Codecs = "avc1.64001e"
	ts := uint32(90000)
	start := uint32(0)
	rep.SegmentTemplate = &mpd.SegmentTemplateType{Initialization: "v0/init.mp4", Media: "v0/$Number$.m4s"}
	rep.SegmentTemplate.Timescale = &ts
	rep.SegmentTemplate.StartNumber = &start
	d := uint32(90000)
	rep.SegmentTemplate.Duration = &d
	as.AppendRepresentation(rep)
	var b bytes.Buffer
	if _, err := m.Write(&b, "  ", true); err != nil {
		t.Fatal(err)
	}
	golden(t, "content_protection.mpd", b.Bytes())
	mpdtest.Validate(t, b.Bytes())
	for _, want := range []string{
		`schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cbcs"`,
		`cenc:default_KID="` + testKey.KID.String() + `"`,
		`schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" value="ClearKey1.0"`,
		`<dashif:Laurl xmlns:dashif="https://dashif.org/CPS">https://origin.example/license/cam</dashif:Laurl>`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("MPD lacks %s", want)
		}
	}
	back, err := mpd.ReadFromString(b.String())
	if err != nil {
		t.Fatal(err)
	}
	got := back.Periods[0].AdaptationSets[0].ContentProtections
	if len(got) != 4 || got[0].DefaultKID != testKey.KID.String() || got[1].LaURL == nil || got[2].Pssh == nil || got[3].MSPro == nil {
		t.Errorf("read back %+v", got)
	}

	if _, err := DASHContentProtection(testKey, DASHKeys{LicenseURL: "/relative"}); err == nil {
		t.Error("relative license URL accepted")
	}
	only, _ := DASHContentProtection(testKey, DASHKeys{})
	if len(only) != 1 {
		t.Errorf("%d elements without options", len(only))
	}
	bare, err := DASHContentProtection(testKey, DASHKeys{ClearKey: true})
	if err != nil || len(bare) != 2 || bare[1].SchemeIdUri != "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" || bare[1].LaURL != nil {
		t.Errorf("ClearKey element without a license URL: %+v, %v", bare, err)
	}
	common, err := DASHContentProtection(testKey, DASHKeys{LicenseURL: "https://x/l", ClearKeySystem: SystemCommon})
	if err != nil || common[1].SchemeIdUri != "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b" {
		t.Errorf("common system ClearKey element: %v", err)
	}
	if _, err := DASHContentProtection(testKey, DASHKeys{LicenseURL: "https://x/l", ClearKeySystem: SystemWidevine}); err == nil {
		t.Error("ClearKey element named Widevine accepted")
	}
}

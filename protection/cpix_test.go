package protection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// keyServerValue is the content key the test key server gives every KID:
// its bytes reversed.
func keyServerValue(kid KID) [16]byte {
	var v [16]byte
	for i := range v {
		v[i] = kid[15-i]
	}
	return v
}

// widevinePSSH returns a Widevine pssh box for kid.
func widevinePSSH(tb testing.TB, kid KID) []byte {
	tb.Helper()
	p, err := mp4.NewPsshBox(string(SystemWidevine), []string{kid.String()}, []byte("widevine data"))
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// cpixResponse is a key server's answer to the KIDs of a request: each
// with its key, an explicit IV, and a Widevine and a FairPlay DRMSystem.
func cpixResponse(tb testing.TB, contentID string, kids []KID) string {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX contentId="%s" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <cpix:ContentKeyList>
`, xmlEscape(tb, contentID))
	for _, k := range kids {
		v := keyServerValue(k)
		fmt.Fprintf(&b, `    <cpix:ContentKey kid=%q explicitIV=%q commonEncryptionScheme="cbcs">
      <cpix:Data><pskc:Secret><pskc:PlainValue>
        %s
      </pskc:PlainValue></pskc:Secret></cpix:Data>
    </cpix:ContentKey>
`, k.String(), base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), base64.StdEncoding.EncodeToString(v[:]))
	}
	b.WriteString("  </cpix:ContentKeyList>\n  <cpix:DRMSystemList>\n")
	for _, k := range kids {
		fmt.Fprintf(&b, `    <cpix:DRMSystem kid=%q systemId=%q>
      <cpix:PSSH>%s</cpix:PSSH>
    </cpix:DRMSystem>
    <cpix:DRMSystem kid=%q systemId=%q>
      <cpix:URIExtXKey>%s</cpix:URIExtXKey>
      <cpix:HLSSignalingData playlist="media">IGlnbm9yZWQ=</cpix:HLSSignalingData>
    </cpix:DRMSystem>
`, k.String(), string(SystemWidevine), base64.StdEncoding.EncodeToString(widevinePSSH(tb, k)),
			k.String(), string(SystemFairPlay), base64.StdEncoding.EncodeToString([]byte("skd://"+k.Hex())))
	}
	b.WriteString("  </cpix:DRMSystemList>\n</cpix:CPIX>\n")
	return b.String()
}

func xmlEscape(tb testing.TB, s string) string {
	tb.Helper()
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// cpixServer is an httptest key server: it checks the credentials and the
// request document and answers with cpixResponse.
func cpixServer(tb testing.TB) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var req struct {
			ContentID string `xml:"contentId,attr"`
			Keys      []struct {
				KID    string `xml:"kid,attr"`
				Scheme string `xml:"commonEncryptionScheme,attr"`
			} `xml:"urn:dashif:org:cpix ContentKeyList>ContentKey"`
			Systems []struct {
				KID      string `xml:"kid,attr"`
				SystemID string `xml:"systemId,attr"`
			} `xml:"urn:dashif:org:cpix DRMSystemList>DRMSystem"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := xml.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var kids []KID
		for _, k := range req.Keys {
			kid, err := ParseKID(k.KID)
			if err != nil || k.Scheme != "cbcs" {
				http.Error(w, "bad key", http.StatusBadRequest)
				return
			}
			kids = append(kids, kid)
		}
		if len(req.Systems) != 2*len(kids) {
			http.Error(w, "systems not asked for", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = io.WriteString(w, cpixResponse(tb, req.ContentID, kids))
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// TestCPIXClient: keys, IVs and DRM signalling come back from a key server
// for the KIDs asked; a Store backed by it issues them.
func TestCPIXClient(t *testing.T) {
	srv := cpixServer(t)
	c, err := NewCPIXClient(CPIXConfig{
		URL:     srv.URL,
		Header:  http.Header{"Authorization": {"Bearer k"}},
		Systems: []SystemID{SystemWidevine, SystemFairPlay},
	})
	if err != nil {
		t.Fatal(err)
	}
	kids := []KID{testKey.KID, testKey2.KID}
	keys, err := c.Keys(context.Background(), "cam & co", kids)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k.KID != kids[i] || k.Value != keyServerValue(kids[i]) || k.IV == ([16]byte{}) {
			t.Errorf("key %d: %+v", i, k)
		}
		wv, ok := k.system(SystemWidevine)
		if !ok || !bytes.Equal(wv.PSSH, widevinePSSH(t, kids[i])) {
			t.Errorf("key %d: Widevine pssh %x", i, wv.PSSH)
		}
		fp, ok := k.system(SystemFairPlay)
		if !ok || fp.HLSURI != "skd://"+kids[i].Hex() {
			t.Errorf("key %d: FairPlay URI %q", i, fp.HLSURI)
		}
	}

	s, err := NewStore(StoreConfig{Secret: testSecret, Fetch: c.Fetch})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Key(context.Background(), Period{"cam", "1", 0})
	if err != nil {
		t.Fatal(err)
	}
	if k.Value != keyServerValue(k.KID) || len(k.Systems) != 2 {
		t.Errorf("store key %+v", k)
	}

	bad, _ := NewCPIXClient(CPIXConfig{URL: srv.URL})
	if _, err := bad.Keys(context.Background(), "", kids); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without credentials: %v", err)
	}
	small, _ := NewCPIXClient(CPIXConfig{URL: srv.URL, MaxResponse: 100, Header: http.Header{"Authorization": {"Bearer k"}},
		Systems: []SystemID{SystemWidevine, SystemFairPlay}})
	if _, err := small.Keys(context.Background(), "", kids); !errors.Is(err, ErrCPIX) {
		t.Errorf("response over MaxResponse: %v", err)
	}
	for _, u := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := NewCPIXClient(CPIXConfig{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

// TestCPIXRequest: the request document is well-formed CPIX with an escaped
// content ID.
func TestCPIXRequest(t *testing.T) {
	doc, err := cpixRequest(`a"<&>`, []KID{testKey.KID}, []SystemID{SystemWidevine})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cpix_request.xml", doc)
	var v struct {
		ContentID string `xml:"contentId,attr"`
	}
	if err := xml.Unmarshal(doc, &v); err != nil || v.ContentID != `a"<&>` {
		t.Errorf("content ID %q, %v", v.ContentID, err)
	}
}

// cpixCases are responses parseCPIX refuses, and seeds of FuzzParseCPIX.
func cpixCases(tb testing.TB) []struct {
	name string
	doc  string
} {
	good := cpixResponse(tb, "c", []KID{testKey.KID})
	kid := testKey.KID.String()
	return []struct {
		name string
		doc  string
	}{
		{"not XML", "hello"},
		{"other root", `<CPIX xmlns="urn:other"/>`},
		{"no key", `<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix"/>`},
		{"key not asked", strings.ReplaceAll(good, kid, testKey2.KID.String())},
		{"bad KID", strings.ReplaceAll(good, kid, "nope")},
		{"short key", strings.Replace(good, base64.StdEncoding.EncodeToString(func() []byte { v := keyServerValue(testKey.KID); return v[:] }()), "AAAA", 1)},
		{"encrypted key", `<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><cpix:ContentKeyList><cpix:ContentKey kid="` + kid + `"><cpix:Data><pskc:Secret><pskc:EncryptedValue/></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList></cpix:CPIX>`},
		{"no data", `<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix"><cpix:ContentKeyList><cpix:ContentKey kid="` + kid + `"/></cpix:ContentKeyList></cpix:CPIX>`},
		{"cenc scheme", strings.Replace(good, `commonEncryptionScheme="cbcs"`, `commonEncryptionScheme="cenc"`, 1)},
		{"key twice", strings.Replace(good, "</cpix:ContentKeyList>", good[strings.Index(good, "<cpix:ContentKey "):strings.Index(good, "</cpix:ContentKeyList>")]+"</cpix:ContentKeyList>", 1)},
		{"bad PSSH", strings.Replace(good, "<cpix:PSSH>", "<cpix:PSSH>AAAA", 1)},
		{"URI with quote", strings.Replace(good, base64.StdEncoding.EncodeToString([]byte("skd://"+testKey.KID.Hex())), base64.StdEncoding.EncodeToString([]byte(`skd://"x`)), 1)},
		{"truncated", good[:len(good)/2]},
	}
}

// TestParseCPIX: a good response parses; each bad one is refused with
// ErrCPIX.
func TestParseCPIX(t *testing.T) {
	keys, err := parseCPIX([]byte(cpixResponse(t, "c", []KID{testKey.KID})), []KID{testKey.KID})
	if err != nil || len(keys) != 1 || keys[0].Value != keyServerValue(testKey.KID) {
		t.Fatalf("good response: %v %+v", err, keys)
	}
	for _, tt := range cpixCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseCPIX([]byte(tt.doc), []KID{testKey.KID}); !errors.Is(err, ErrCPIX) {
				t.Errorf("error %v, want ErrCPIX", err)
			}
		})
	}
}

// FuzzParseCPIX: parseCPIX never panics, and what it accepts has a 16-byte
// key for the KID asked and well-formed DRM signalling.
func FuzzParseCPIX(f *testing.F) {
	f.Add(cpixResponse(f, "c", []KID{testKey.KID}))
	for _, tt := range cpixCases(f) {
		f.Add(tt.doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		keys, err := parseCPIX([]byte(doc), []KID{testKey.KID})
		if err != nil {
			return
		}
		if len(keys) != 1 || keys[0].KID != testKey.KID {
			t.Fatalf("accepted %+v", keys)
		}
		if _, err := psshBoxes(keys[0]); err != nil {
			t.Fatalf("accepted unusable signalling: %v", err)
		}
		for _, s := range keys[0].Systems {
			if checkQuotable(s.HLSURI) != nil {
				t.Fatalf("accepted URI %q", s.HLSURI)
			}
		}
	})
}

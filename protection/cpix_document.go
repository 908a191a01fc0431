package protection

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// ErrCPIX is returned (wrapped) for a CPIX document that cannot be used:
// not well-formed, keys missing, of the wrong size or for KIDs not asked
// for, or encrypted (pskc:EncryptedValue, which needs a document key
// exchange this client does not do).
var ErrCPIX = errors.New("unusable CPIX document")

// XML namespaces of DASH-IF CPIX 2.3 (5.1) and of the PSKC key container
// (RFC 6030) it uses for key values.
const (
	cpixNS = "urn:dashif:org:cpix"
	pskcNS = "urn:ietf:params:xml:ns:keyprov:pskc"
)

// maxCPIXEntries bounds the ContentKey and DRMSystem elements read from a
// response.
const maxCPIXEntries = 1024

// cpixRequest builds the request document of DASH-IF CPIX 2.3 5.2: one
// ContentKey per KID, without a value, for the 'cbcs' scheme, and one
// DRMSystem per KID and system, asking for that system's signalling.
func cpixRequest(contentID string, kids []KID, systems []SystemID) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<cpix:CPIX xmlns:cpix="` + cpixNS + `" xmlns:pskc="` + pskcNS + `"`)
	if contentID != "" {
		b.WriteString(` contentId="`)
		if err := xml.EscapeText(&b, []byte(contentID)); err != nil {
			return nil, err
		}
		b.WriteString(`"`)
	}
	b.WriteString(">\n  <cpix:ContentKeyList>\n")
	for _, k := range kids {
		fmt.Fprintf(&b, "    <cpix:ContentKey kid=%q commonEncryptionScheme=\"cbcs\"/>\n", k.String())
	}
	b.WriteString("  </cpix:ContentKeyList>\n")
	if len(systems) > 0 {
		b.WriteString("  <cpix:DRMSystemList>\n")
		for _, k := range kids {
			for _, s := range systems {
				fmt.Fprintf(&b, "    <cpix:DRMSystem kid=%q systemId=%q/>\n", k.String(), string(s))
			}
		}
		b.WriteString("  </cpix:DRMSystemList>\n")
	}
	b.WriteString("</cpix:CPIX>\n")
	return b.Bytes(), nil
}

// cpixDoc is the part of a CPIX document (DASH-IF CPIX 2.3 5.3) read from
// a response.
type cpixDoc struct {
	XMLName     xml.Name         `xml:"urn:dashif:org:cpix CPIX"`
	ContentKeys []cpixContentKey `xml:"urn:dashif:org:cpix ContentKeyList>ContentKey"`
	DRMSystems  []cpixDRMSystem  `xml:"urn:dashif:org:cpix DRMSystemList>DRMSystem"`
}

// cpixContentKey is a ContentKey element (5.3.3).
type cpixContentKey struct {
	KID        string `xml:"kid,attr"`
	ExplicitIV string `xml:"explicitIV,attr"`
	Scheme     string `xml:"commonEncryptionScheme,attr"`
	Data       *struct {
		Secret struct {
			Plain     string    `xml:"urn:ietf:params:xml:ns:keyprov:pskc PlainValue"`
			Encrypted *struct{} `xml:"urn:ietf:params:xml:ns:keyprov:pskc EncryptedValue"`
		} `xml:"urn:ietf:params:xml:ns:keyprov:pskc Secret"`
	} `xml:"urn:dashif:org:cpix Data"`
}

// cpixDRMSystem is a DRMSystem element (5.3.4).
type cpixDRMSystem struct {
	KID        string `xml:"kid,attr"`
	SystemID   string `xml:"systemId,attr"`
	PSSH       string `xml:"urn:dashif:org:cpix PSSH"`
	URIExtXKey string `xml:"urn:dashif:org:cpix URIExtXKey"`
}

// parseCPIX reads the keys of a CPIX response document. Every KID of want
// must have a key of 16 bytes, given in the clear; elements for KIDs not in
// want are refused, as are duplicates. DRMSystem signalling for a wanted
// KID is attached to its key (base64 PSSH, checked to be pssh boxes of the
// system; base64 URIExtXKey).
func parseCPIX(data []byte, want []KID) ([]Key, error) {
	var doc cpixDoc
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCPIX, err)
	}
	if len(doc.ContentKeys) > maxCPIXEntries || len(doc.DRMSystems) > maxCPIXEntries {
		return nil, fmt.Errorf("%w: %d content keys and %d DRM systems", ErrCPIX, len(doc.ContentKeys), len(doc.DRMSystems))
	}
	index := make(map[KID]int, len(want))
	for i, k := range want {
		index[k] = i
	}
	keys := make([]Key, len(want))
	found := make([]bool, len(want))
	for _, ck := range doc.ContentKeys {
		kid, err := ParseKID(strings.TrimSpace(ck.KID))
		if err != nil {
			return nil, fmt.Errorf("%w: ContentKey: %w", ErrCPIX, err)
		}
		i, ok := index[kid]
		if !ok || found[i] {
			return nil, fmt.Errorf("%w: ContentKey %s not asked for, or given twice", ErrCPIX, kid)
		}
		if ck.Scheme != "" && ck.Scheme != "cbcs" {
			return nil, fmt.Errorf("%w: ContentKey %s for scheme %q", ErrCPIX, kid, ck.Scheme)
		}
		if ck.Data == nil {
			return nil, fmt.Errorf("%w: ContentKey %s without Data", ErrCPIX, kid)
		}
		if ck.Data.Secret.Encrypted != nil {
			return nil, fmt.Errorf("%w: ContentKey %s is encrypted", ErrCPIX, kid)
		}
		if err := decode16(&keys[i].Value, ck.Data.Secret.Plain); err != nil {
			return nil, fmt.Errorf("%w: ContentKey %s value: %w", ErrCPIX, kid, err)
		}
		if ck.ExplicitIV != "" {
			if err := decode16(&keys[i].IV, ck.ExplicitIV); err != nil {
				return nil, fmt.Errorf("%w: ContentKey %s explicitIV: %w", ErrCPIX, kid, err)
			}
		}
		keys[i].KID = kid
		found[i] = true
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("%w: no ContentKey for %s", ErrCPIX, want[i])
		}
	}
	for _, ds := range doc.DRMSystems {
		s, kid, err := parseDRMSystem(ds)
		if err != nil {
			return nil, err
		}
		i, ok := index[kid]
		if !ok {
			return nil, fmt.Errorf("%w: DRMSystem for KID %s not asked for", ErrCPIX, kid)
		}
		if _, dup := keys[i].system(s.ID); dup {
			return nil, fmt.Errorf("%w: DRMSystem %s given twice for %s", ErrCPIX, s.ID, kid)
		}
		keys[i].Systems = append(keys[i].Systems, s)
	}
	return keys, nil
}

// parseDRMSystem reads one DRMSystem element.
func parseDRMSystem(ds cpixDRMSystem) (System, KID, error) {
	kid, err := ParseKID(strings.TrimSpace(ds.KID))
	if err != nil {
		return System{}, kid, fmt.Errorf("%w: DRMSystem: %w", ErrCPIX, err)
	}
	id, err := ParseSystemID(strings.TrimSpace(ds.SystemID))
	if err != nil {
		return System{}, kid, fmt.Errorf("%w: DRMSystem systemId: %w", ErrCPIX, err)
	}
	s := System{ID: id}
	if p := compactBase64(ds.PSSH); p != "" {
		if s.PSSH, err = base64.StdEncoding.DecodeString(p); err != nil {
			return System{}, kid, fmt.Errorf("%w: DRMSystem %s PSSH: %w", ErrCPIX, id, err)
		}
		if _, err := psshBoxes(Key{KID: kid, Systems: []System{s}}); err != nil {
			return System{}, kid, fmt.Errorf("%w: DRMSystem %s: %w", ErrCPIX, id, err)
		}
	}
	if u := compactBase64(ds.URIExtXKey); u != "" {
		b, err := base64.StdEncoding.DecodeString(u)
		if err != nil {
			return System{}, kid, fmt.Errorf("%w: DRMSystem %s URIExtXKey: %w", ErrCPIX, id, err)
		}
		if err := checkQuotable(string(b)); err != nil {
			return System{}, kid, fmt.Errorf("%w: DRMSystem %s URIExtXKey: %w", ErrCPIX, id, err)
		}
		s.HLSURI = string(b)
	}
	return s, kid, nil
}

// decode16 decodes standard base64 text (white space allowed) that must
// hold exactly 16 bytes.
func decode16(dst *[16]byte, s string) error {
	b, err := base64.StdEncoding.DecodeString(compactBase64(s))
	if err != nil {
		return err
	}
	if len(b) != 16 {
		return fmt.Errorf("%d bytes, want 16", len(b))
	}
	copy(dst[:], b)
	return nil
}

// compactBase64 drops the white space that XML base64Binary allows.
func compactBase64(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
}

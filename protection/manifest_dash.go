package protection

import (
	"encoding/base64"
	"fmt"
	"net/url"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/mp4"
)

// DASH ContentProtection scheme (ISO/IEC 23009-1 5.8.5.2, ISO/IEC 23001-7
// 11.2) and the ClearKey value (DASH-IF IOP 4.3 7.6.2.4).
const (
	schemeMP4Protection = "urn:mpeg:dash:mp4protection:2011"
	clearKeyValue       = "ClearKey1.0"
)

// DASHKeys says which ContentProtection elements to write.
type DASHKeys struct {
	// LicenseURL is the ClearKey license URL (KeyServer.ServeLicense),
	// written as the dashif:Laurl of the ClearKey element (DASH-IF IOP 5,
	// content protection 4.3: dash.js and Shaka Player read it). Empty
	// means no ClearKey element.
	LicenseURL string
	// ClearKeySystem names the scheme of the ClearKey element. Zero means
	// SystemClearKey (urn:uuid:e2719d58-..., DASH-IF IOP 4.3 7.6.2.4),
	// which dash.js and Shaka Player both read; but both then take the
	// element's KID as the only init data, and neither opens a license
	// session for the KID of a later key period that the media signals
	// (tested: dash.js 5.2.1 and Shaka Player 5.2.12 stall at the key
	// change). SystemCommon (urn:uuid:1077efec-..., the W3C common PSSH
	// system) makes Shaka Player take its init data from the pssh boxes of
	// the media and follow key rotation; dash.js 5.2.1 cannot start with
	// it. Any other value is refused.
	ClearKeySystem SystemID
	// ClearKey, when set, writes the ClearKey element even without a
	// LicenseURL, then without dashif:Laurl: for players given the license
	// URL by their page, as a URL under the viewer's token path, which a
	// manifest shared by every viewer cannot hold (issue #25). False
	// means no element without LicenseURL.
	ClearKey bool
	// Systems, when set, adds an element for Widevine and for PlayReady
	// when the key has a pssh for them, with the pssh as cenc:pssh (and
	// PlayReady's object as mspr:pro).
	Systems bool
}

// DASHContentProtection returns the ContentProtection elements of an
// AdaptationSet whose init segment has k's KID as default KID
// (Encryptor.DefaultKID), in the order DASH-IF IOP 4.3 7.7.2 gives: first
// the mp4protection descriptor, value "cbcs" with cenc:default_KID, then
// one element per DRM system, named by its system ID. A later key period
// needs no new element: the media signals it in-band (Encrypt), for the
// players that follow it (see DASHKeys.ClearKeySystem). It is a pure
// function: the elements are new on each call.
func DASHContentProtection(k Key, o DASHKeys) ([]*mpd.ContentProtectionType, error) {
	out := []*mpd.ContentProtectionType{{
		DefaultKID:     k.KID.String(),
		DescriptorType: mpd.DescriptorType{SchemeIdUri: schemeMP4Protection, Value: "cbcs"},
	}}
	if o.LicenseURL != "" || o.ClearKey {
		var laURL *mpd.LaURLType
		if o.LicenseURL != "" {
			u, err := url.Parse(o.LicenseURL)
			if err != nil || !u.IsAbs() {
				return nil, fmt.Errorf("dash content protection: license URL %q is not an absolute URL", o.LicenseURL)
			}
			laURL = &mpd.LaURLType{Value: mpd.AnyURI(o.LicenseURL)}
		}
		scheme := o.ClearKeySystem
		switch scheme {
		case "":
			scheme = SystemClearKey
		case SystemClearKey, SystemCommon:
		default:
			return nil, fmt.Errorf("dash content protection: ClearKey system %q", scheme)
		}
		out = append(out, &mpd.ContentProtectionType{
			DefaultKID:     k.KID.String(),
			LaURL:          laURL,
			DescriptorType: mpd.DescriptorType{SchemeIdUri: mpd.AnyURI(urn(scheme)), Value: clearKeyValue},
		})
	}
	if !o.Systems {
		return out, nil
	}
	for _, s := range k.Systems {
		if len(s.PSSH) == 0 {
			continue
		}
		cp := &mpd.ContentProtectionType{
			DefaultKID:     k.KID.String(),
			Pssh:           &mpd.PsshType{Value: base64.StdEncoding.EncodeToString(s.PSSH)},
			DescriptorType: mpd.DescriptorType{SchemeIdUri: mpd.AnyURI(urn(s.ID))},
		}
		switch s.ID {
		case SystemWidevine:
			cp.Value = "Widevine"
		case SystemPlayReady:
			cp.Value = "MSPR 2.0"
			boxes, err := mp4.PsshBoxesFromBytes(s.PSSH)
			if err != nil || len(boxes) != 1 {
				return nil, fmt.Errorf("dash content protection: PlayReady pssh: %d boxes, %v", len(boxes), err)
			}
			cp.MSPro = &mpd.MSProType{Value: base64.StdEncoding.EncodeToString(boxes[0].Data)}
		default:
			continue
		}
		out = append(out, cp)
	}
	return out, nil
}

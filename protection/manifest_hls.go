package protection

import (
	"errors"
	"fmt"
	"strings"
)

// HLS KEYFORMAT values (RFC 8216bis 4.4.4.4; the formats players know).
const (
	// KeyFormatIdentity is the raw 16-byte key at URI (RFC 8216bis
	// 5.1), which Apple's players use for 'cbcs' fMP4 without FairPlay.
	KeyFormatIdentity = "identity"
	// KeyFormatClearKey is what hls.js expects for EME ClearKey.
	KeyFormatClearKey = "org.w3.clearkey"
	// KeyFormatFairPlay is Apple FairPlay Streaming.
	KeyFormatFairPlay = "com.apple.streamingkeydelivery"
	// KeyFormatWidevine is Widevine, named by its system ID.
	KeyFormatWidevine = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
	// KeyFormatPlayReady is Microsoft PlayReady.
	KeyFormatPlayReady = "com.microsoft.playready"
)

// HLSKeys says which EXT-X-KEY tags to write for a key. Every URI is
// written in a quoted-string and must not hold a double quote, a carriage
// return or a line feed.
type HLSKeys struct {
	// IdentityURI is the URI of the raw key (KeyServer.ServeKey), for
	// KEYFORMAT "identity". Empty means no such tag.
	IdentityURI string
	// ClearKeyURI is the URI of the KEYFORMAT "org.w3.clearkey" tag: the
	// ClearKey license URL (KeyServer.ServeLicense). hls.js keys its EME
	// sessions by this URI, so it must differ from one key to the next
	// (add the KID to it), and takes the key ID from the tag's KEYID
	// attribute. Empty means no such tag.
	ClearKeyURI string
	// Systems, when set, adds a tag for each DRM system of the key that
	// has an HLS URI (Key.Systems[i].HLSURI, from CPIX URIExtXKey):
	// FairPlay, Widevine and PlayReady by their KEYFORMAT.
	Systems bool
}

// HLSKeyTags returns the EXT-X-KEY tags (without line ends) announcing
// that the following media segments are encrypted with key k (RFC 8216bis
// 4.4.4.4): METHOD=SAMPLE-AES, the method for 'cbcs' fMP4, with one tag
// per key format of o, in the order identity, ClearKey, then the systems
// of k. All tags name the same key, as the RFC requires of tags that apply
// to the same segments. No IV attribute is written: the IV of 'cbcs' fMP4
// is in the media (tenc or seig).
//
// A playlist writes them before the first segment of each key period, and
// at its top for the period of its first segment. It is a pure function.
//
// Players: hls.js plays ClearKey (with emeEnabled and a
// drmSystems["org.w3.clearkey"] licenseUrl) but takes an "identity" tag
// on fMP4 for its own software decryption of MPEG-TS and fails; give
// hls.js playlists without IdentityURI, Safari's native player the
// identity tag.
func HLSKeyTags(k Key, o HLSKeys) ([]string, error) {
	var tags []string
	add := func(uri, format string, keyID bool) error {
		if err := checkQuotable(uri); err != nil {
			return fmt.Errorf("hls key tag %s: %w", format, err)
		}
		t := `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="` + uri + `",KEYFORMAT="` + format + `",KEYFORMATVERSIONS="1"`
		if keyID {
			// Not in RFC 8216bis (clients ignore attributes they do
			// not know): the key ID as hls.js, Shaka Packager and
			// Widevine's HLS use it.
			t += ",KEYID=0x" + strings.ToUpper(k.KID.Hex())
		}
		tags = append(tags, t)
		return nil
	}
	if o.IdentityURI != "" {
		if err := add(o.IdentityURI, KeyFormatIdentity, false); err != nil {
			return nil, err
		}
	}
	if o.ClearKeyURI != "" {
		if err := add(o.ClearKeyURI, KeyFormatClearKey, true); err != nil {
			return nil, err
		}
	}
	if o.Systems {
		for _, s := range k.Systems {
			if s.HLSURI == "" {
				continue
			}
			var format string
			switch s.ID {
			case SystemFairPlay:
				format = KeyFormatFairPlay
			case SystemWidevine:
				format = KeyFormatWidevine
			case SystemPlayReady:
				format = KeyFormatPlayReady
			default:
				format = urn(s.ID)
			}
			if err := add(s.HLSURI, format, s.ID == SystemWidevine); err != nil {
				return nil, err
			}
		}
	}
	if len(tags) == 0 {
		return nil, errors.New("hls key tags: no key format chosen")
	}
	return tags, nil
}

// checkQuotable refuses what cannot be written in an HLS quoted-string
// (RFC 8216bis 4.2): a double quote, CR or LF, and so a playlist cannot be
// given extra tags through a URI.
func checkQuotable(s string) error {
	if strings.ContainsAny(s, "\"\r\n") {
		return fmt.Errorf("%q holds a character a quoted-string cannot", s)
	}
	return nil
}

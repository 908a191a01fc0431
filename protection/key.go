package protection

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrBadKID is returned (wrapped) when a key ID cannot be parsed.
var ErrBadKID = errors.New("bad key ID")

// KID is a 16-byte key ID (ISO/IEC 23001-7 8.2: tenc default_KID, pssh KID).
// Its text form is a UUID, as in DASH's cenc:default_KID.
type KID [16]byte

// String returns k as a lower-case UUID: 8-4-4-4-12 hex digits.
func (k KID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], k[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], k[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], k[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], k[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], k[10:16])
	return string(b[:])
}

// Hex returns k as 32 lower-case hex digits.
func (k KID) Hex() string { return hex.EncodeToString(k[:]) }

// Base64URL returns k in unpadded base64url, the form of W3C EME ClearKey
// license messages (EME 9.1.3, "kids" and "kid").
func (k KID) Base64URL() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// ParseKID reads a KID written as a UUID (with dashes) or as 32 hex digits,
// in either case.
func ParseKID(s string) (KID, error) {
	var k KID
	h := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return k, fmt.Errorf("%w: %q", ErrBadKID, s)
		}
		h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	}
	if len(h) != 32 {
		return k, fmt.Errorf("%w: %q", ErrBadKID, s)
	}
	if _, err := hex.Decode(k[:], []byte(h)); err != nil {
		return k, fmt.Errorf("%w: %q", ErrBadKID, s)
	}
	return k, nil
}

// MarshalText writes k as a UUID (for JSON).
func (k KID) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads k as ParseKID does.
func (k *KID) UnmarshalText(b []byte) error {
	v, err := ParseKID(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// SystemID is a protection system ID (ISO/IEC 23001-7 8.1.3), written as
// a lower-case UUID (ParseSystemID normalises others).
type SystemID string

// Well-known protection system IDs (the DASH-IF registry of system IDs).
const (
	// SystemCommon is the W3C "common" PSSH format (W3C EME initData
	// "cenc"): a version 1 pssh listing KIDs and no data. EME ClearKey
	// reads it.
	SystemCommon SystemID = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
	// SystemClearKey names W3C ClearKey in DASH ContentProtection
	// (DASH-IF IOP 4.3 7.6.2.4).
	SystemClearKey SystemID = "e2719d58-a985-b3c9-781a-b030af78d30e"
	// SystemWidevine is Google Widevine.
	SystemWidevine SystemID = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
	// SystemPlayReady is Microsoft PlayReady.
	SystemPlayReady SystemID = "9a04f079-9840-4286-ab92-e65be0885f95"
	// SystemFairPlay is Apple FairPlay Streaming.
	SystemFairPlay SystemID = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
)

// ParseSystemID reads a system ID written as ParseKID reads a KID.
func ParseSystemID(s string) (SystemID, error) {
	k, err := ParseKID(s)
	if err != nil {
		return "", err
	}
	return SystemID(k.String()), nil
}

// uuid returns the 16 bytes of id, or nil when id is not a UUID.
func (id SystemID) uuid() []byte {
	k, err := ParseKID(string(id))
	if err != nil {
		return nil
	}
	return k[:]
}

// Key is the content key of one key period, with what is needed to signal
// it. A Key is a value: copies share only the byte slices of Systems, which
// nobody modifies.
type Key struct {
	// KID identifies the key.
	KID KID
	// Value is the AES-128 content key. Secret.
	Value [16]byte
	// IV is the base of the constant IVs (ISO/IEC 23001-7 10.4: cbcs uses
	// a constant IV): each track encrypts with TrackIV(track), so that two
	// tracks sharing the key do not share an IV.
	IV [16]byte
	// Systems holds what DRM systems other than ClearKey need for this key
	// (from a CPIX response); nil means ClearKey only.
	Systems []System
}

// System is the signalling of one DRM system for one key, as a CPIX
// DRMSystem element carries it (DASH-IF CPIX 2.3 5.2.4).
type System struct {
	// ID is the DRM system ID (SystemWidevine, SystemPlayReady,
	// SystemFairPlay, ...).
	ID SystemID `json:"id"`
	// PSSH is a complete pssh box (ISO/IEC 23001-7 8.1.1) for the init
	// segment, the moofs of a later key period and DASH's cenc:pssh; nil
	// when the system has none (FairPlay).
	PSSH []byte `json:"pssh,omitempty"`
	// HLSURI is the URI of the system's EXT-X-KEY (CPIX URIExtXKey), e.g.
	// "skd://..." for FairPlay or a data: URI holding a Widevine pssh.
	// Empty: the system is not signalled in HLS playlists.
	HLSURI string `json:"hlsURI,omitempty"`
}

// TrackIV returns the constant IV that track encrypts with under k: the
// first 16 bytes of SHA-256("cbcs-iv" || k.IV || track). Two origins given
// the same key derive the same IV, and tracks differ.
func (k Key) TrackIV(track string) [16]byte {
	h := sha256.New()
	h.Write([]byte("cbcs-iv"))
	h.Write(k.IV[:])
	h.Write([]byte(track))
	var iv [16]byte
	copy(iv[:], h.Sum(nil))
	return iv
}

// system returns the signalling of DRM system id, if k has it.
func (k Key) system(id SystemID) (System, bool) {
	for _, s := range k.Systems {
		if s.ID == id {
			return s, true
		}
	}
	return System{}, false
}

// urn returns id as the URN DASH's ContentProtection@schemeIdUri uses.
func urn(id SystemID) string { return "urn:uuid:" + strings.ToLower(string(id)) }

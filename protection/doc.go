// Package protection encrypts CMAF tracks with Common Encryption 'cbcs'
// (ISO/IEC 23001-7), the one scheme that HLS (SAMPLE-AES, RFC 8216bis) and
// DASH players both take, so that one set of encrypted files serves both
// (issue #25). It also issues the keys, writes their signalling for
// playlists and MPDs, and delivers them to viewers an authorization hook
// admits.
//
// # Encryption
//
// An Encryptor is made per track and stream epoch from the packager's clear
// init segment and the key of the first key period (New); Init returns the
// protected init segment. Encrypt turns each chunk (moof+mdat) that the
// packager hands out, or a whole segment, into its encrypted form with the
// key of the chunk's key period. Encryption is a pure function of the
// bytes, the key and the track name: two origins given the same keys write
// the same bytes, and an Encryptor is safe for concurrent use.
//
// Video (H.264, H.265) is encrypted by subsample: NAL unit lengths and
// headers, slice headers and non-slice NAL units stay clear, and the slice
// data is encrypted with the pattern 1:9 from its first byte (CMAF 8.2.2.1).
// Audio (AAC) is encrypted whole, every complete 16-byte block of each
// frame. The IV is constant per key and track (default_Per_Sample_IV_Size
// 0), as CMAF requires for 'cbcs'.
//
// # Key rotation
//
// A key period starts at a segment boundary, chosen by the caller; the
// init segment keeps the first period's KID as its default KID for the
// whole epoch. The fragments of a later period say which key they use
// in-band: a 'seig' sample group (sbgp+sgpd in each traf, ISO/IEC 23001-7
// 6) with the period's KID and constant IV, and the period's pssh boxes in
// each moof, from which the browser raises an EME "encrypted" event. So
// the init segment, the HLS EXT-X-MAP and the DASH Period stay as they
// are: HLS writes the period's EXT-X-KEY tags (HLSKeyTags) before its first
// segment, DASH needs nothing new (DASHContentProtection).
//
// What follows the change, tested in Chromium with EME ClearKey: a page
// opening a session per "encrypted" event (browser_test.go); hls.js 1.7
// (a new EXT-X-KEY per period); Shaka Player 5.2 when the MPD's ClearKey
// element is named by the common system ID (DASHKeys.ClearKeySystem).
// dash.js 5.2 does not: it opens sessions only for the init data it takes
// from the MPD, and stalls at the first segment of a new key.
//
// # Keys
//
// A Store issues the key of each Period, derived from a secret (random
// unless given; Export and ImportStore carry it to a backup origin) or
// fetched from a key server with CPIX (CPIXClient), and finds a key by KID
// for the stream it was issued for. A KeyServer answers EME ClearKey license
// requests and HLS identity key URIs, after the Authorize hook admits the
// viewer, with Cache-Control: private, no-store.
package protection

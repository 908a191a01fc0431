// Package access decides who may watch: signed playback tokens, checked
// by a Verifier on every request at the PoP, and IP rules (Rules,
// Networks, ClientAddr) for the address a request comes from (issue #23).
//
// # Tokens
//
// A token is a JSON Web Token (RFC 7519) in JWS compact form (RFC 7515),
// signed with Ed25519 ("EdDSA", RFC 8037):
//
//	header  {"alg":"EdDSA","kid":"k1"}
//	claims  {"sub":"demo","exp":1767229200,"iat":1767225600,
//	         "pfx":true,"cidr":"10.0.0.0/8","sid":"u42","addrs":2}
//
// sub is the stream, or with pfx the start of the names of the streams,
// the token admits; exp is when it stops (required), nbf when it starts
// (optional); cidr binds it to a client network, sid names a session that
// can be revoked (RevocationSet), addrs limits the client addresses that
// may use it at once. The names are short because tokens travel in URLs:
// a typical token is about 200 bytes (see the README).
//
// Why JWT: it is a standard, and every language a platform backend is
// written in has a library that signs EdDSA JWTs, so the backend needs
// no code of ours to issue tokens (Issue is ours, for Go and for
// cmd/token). Why Ed25519: PoPs hold only public keys, so a PoP that is
// broken into cannot mint tokens; signatures are small (86 bytes in the
// token) and fast to check. Key ids ("kid") let two keys be valid at once
// while keys are rotated.
//
// # Algorithm confusion
//
// The classic JWT attacks make a verifier use the wrong algorithm: "none",
// or HS256 with the public key as the HMAC secret, or a key named by the
// token itself ("jwk", "jku", "x5u"). None of them apply here: only
// "EdDSA" is accepted (jwt.WithValidMethods, and checked again before a
// key is chosen), the key is looked up by "kid" in the Verifier's own
// KeySet and is always an ed25519.PublicKey, and nothing else in the
// header is read. A token without a kid, or with one the Verifier does
// not hold, is invalid.
//
// One signed claim set has one spelling: segments are decoded strictly
// (no padding, no stray bits) and crypto/ed25519 refuses non-canonical
// signatures, so a token cannot be respelled to escape the per-token
// address limit or to fill the cache with variants of itself.
//
// # Reasons
//
// Verify's errors map to the PoP's answers (Status, Reason): no token is
// 401; otherwise 403 with one of invalid, revoked, expired,
// not-yet-valid, wrong-stream, network, too-many-addresses; Rules refuse
// with 403 address.
package access

package protection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// ErrBadLicenseRequest is returned (wrapped) by parseLicenseRequest for a
// body that is not a W3C EME ClearKey license request as this server takes
// it.
var ErrBadLicenseRequest = errors.New("bad ClearKey license request")

// Defaults of KeyServerConfig.
const (
	defaultMaxBody = 4096
	defaultMaxKIDs = 16
)

// KeyLookup finds the key of a KID among the keys of a stream. Store is
// one.
type KeyLookup interface {
	Lookup(ctx context.Context, stream string, kid KID) (Key, error)
}

// KeyServerConfig configures a KeyServer.
type KeyServerConfig struct {
	// Keys finds keys. Required.
	Keys KeyLookup
	// Authorize decides whether the request may have keys of stream (the
	// viewer's token for the stream, its address): nil error means yes.
	// It runs before the body is read. Required: there is no default that
	// would hand keys to anyone.
	Authorize func(r *http.Request, stream string) error
	// Status maps an error of Authorize to the HTTP status of the answer
	// (access.Status does it for the access package's errors). Nil means
	// 403 for every error.
	Status func(error) int
	// Stream names the stream a request is for. Nil means the path value
	// "stream" of the request's pattern (r.PathValue("stream")).
	Stream func(r *http.Request) string
	// MaxBody bounds a license request body, in bytes. Zero means 4 KiB.
	MaxBody int64
	// MaxKIDs bounds the KIDs of one license request. Zero means 16.
	MaxKIDs int
	// CORSOrigin, when not empty, is sent as Access-Control-Allow-Origin
	// on every answer, and CORS preflight requests (OPTIONS) are answered
	// without authorization, allowing the method and the Authorization
	// and Content-Type headers: for players served from another origin.
	// Empty means no CORS headers, and OPTIONS is refused as any method
	// other than the handler's.
	CORSOrigin string
	// Logger logs refusals at debug level and lookup failures at warn.
	// Nil means discard.
	Logger *slog.Logger
}

// KeyServer delivers content keys to viewers the Authorize hook admits:
// ServeLicense answers W3C EME ClearKey license requests (DASH and hls.js
// players), ServeKey the raw key of an HLS "identity" EXT-X-KEY URI
// (Apple's players). Every answer, refusals included, is marked
// Cache-Control: private, no-store, so that no cache between the viewer
// and the server keeps a key. It is safe for concurrent use.
type KeyServer struct {
	keys      KeyLookup
	authorize func(r *http.Request, stream string) error
	status    func(error) int
	stream    func(r *http.Request) string
	maxBody   int64
	maxKIDs   int
	cors      string
	log       *slog.Logger
}

// NewKeyServer validates a copy of cfg and returns a KeyServer.
func NewKeyServer(cfg KeyServerConfig) (*KeyServer, error) {
	if cfg.Keys == nil || cfg.Authorize == nil {
		return nil, errors.New("new key server: Keys and Authorize are required")
	}
	if cfg.MaxBody < 0 || cfg.MaxKIDs < 0 {
		return nil, fmt.Errorf("new key server: negative MaxBody %d or MaxKIDs %d", cfg.MaxBody, cfg.MaxKIDs)
	}
	s := &KeyServer{
		keys:      cfg.Keys,
		authorize: cfg.Authorize,
		status:    cfg.Status,
		stream:    cfg.Stream,
		maxBody:   cfg.MaxBody,
		maxKIDs:   cfg.MaxKIDs,
		cors:      cfg.CORSOrigin,
		log:       cfg.Logger,
	}
	if s.status == nil {
		s.status = func(error) int { return http.StatusForbidden }
	}
	if s.stream == nil {
		s.stream = func(r *http.Request) string { return r.PathValue("stream") }
	}
	if s.maxBody == 0 {
		s.maxBody = defaultMaxBody
	}
	if s.maxKIDs == 0 {
		s.maxKIDs = defaultMaxKIDs
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// admit sets the headers every answer has and runs the Authorize hook. It
// answers the refusal itself and returns false when the request is
// refused.
func (s *KeyServer) admit(w http.ResponseWriter, r *http.Request, method string) (string, bool) {
	h := w.Header()
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if s.cors != "" {
		h.Set("Access-Control-Allow-Origin", s.cors)
		if r.Method == http.MethodOptions {
			// Fetch standard, CORS protocol: a preflight carries no
			// credentials, so it is answered before Authorize.
			h.Set("Access-Control-Allow-Methods", method)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return "", false
		}
	}
	if r.Method != method {
		h.Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "", false
	}
	stream := s.stream(r)
	if stream == "" {
		http.Error(w, "no stream", http.StatusNotFound)
		return "", false
	}
	if err := s.authorize(r, stream); err != nil {
		code := s.status(err)
		if code < 400 || code > 599 {
			code = http.StatusForbidden
		}
		s.log.Debug("key request refused", "stream", stream, "status", code, "err", err)
		http.Error(w, http.StatusText(code), code)
		return "", false
	}
	return stream, true
}

// clearKeyResponse is a W3C EME ClearKey license (EME 9.1.4): a JSON Web
// Key Set of symmetric keys.
type clearKeyResponse struct {
	Keys []jwk  `json:"keys"`
	Type string `json:"type"`
}

// jwk is one key of a ClearKey license.
type jwk struct {
	Kty string `json:"kty"`
	K   string `json:"k"`
	Kid string `json:"kid"`
}

// ServeLicense answers a W3C EME ClearKey license request (EME 9.1.3):
// POST {"kids":["<base64url KID>",...],"type":"temporary"} with the keys
// of the stream among those KIDs, {"keys":[{"kty":"oct","k":...,"kid":...}],
// "type":"temporary"}. It answers 405 to other methods, the Authorize
// hook's status when it refuses, 413 to a body over MaxBody, 400 to a
// request parseLicenseRequest refuses, 404 when no KID is a key of the
// stream.
func (s *KeyServer) ServeLicense(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.admit(w, r, http.MethodPost)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return
	}
	kids, err := parseLicenseRequest(body, s.maxKIDs)
	if err != nil {
		s.log.Debug("bad license request", "stream", stream, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := clearKeyResponse{Keys: make([]jwk, 0, len(kids)), Type: "temporary"}
	for _, kid := range kids {
		k, err := s.keys.Lookup(r.Context(), stream, kid)
		if err != nil {
			if !errors.Is(err, ErrUnknownKey) {
				s.log.Warn("key lookup failed", "stream", stream, "kid", kid.String(), "err", err)
			}
			continue
		}
		resp.Keys = append(resp.Keys, jwk{
			Kty: "oct",
			K:   base64.RawURLEncoding.EncodeToString(k.Value[:]),
			Kid: kid.Base64URL(),
		})
	}
	if len(resp.Keys) == 0 {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	out, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// ServeKey answers GET of an HLS identity key URI with the raw 16-byte key
// (RFC 8216bis 5.1). The KID is the path value "kid" of the request's
// pattern, as KID.String or KID.Hex writes it; the stream is Stream's.
// It answers 405 to other methods, the Authorize hook's status when it
// refuses, 404 for a KID that is not a key of the stream.
func (s *KeyServer) ServeKey(w http.ResponseWriter, r *http.Request) {
	stream, ok := s.admit(w, r, http.MethodGet)
	if !ok {
		return
	}
	kid, err := ParseKID(r.PathValue("kid"))
	if err != nil {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	k, err := s.keys.Lookup(r.Context(), stream, kid)
	if err != nil {
		if !errors.Is(err, ErrUnknownKey) {
			s.log.Warn("key lookup failed", "stream", stream, "kid", kid.String(), "err", err)
		}
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(k.Value[:])
}

// parseLicenseRequest reads a W3C EME ClearKey license request (EME 9.1.3)
// strictly: one JSON object whose members are exactly "kids", 1 to max
// unpadded base64url strings of 16 bytes each, and "type", which must be
// "temporary" (the only session type this server grants); member names
// match case-sensitively, and nothing may follow the object. Repeated KIDs
// are kept once.
func parseLicenseRequest(body []byte, max int) ([]KID, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	var members map[string]json.RawMessage
	if err := d.Decode(&members); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLicenseRequest, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the request", ErrBadLicenseRequest)
	}
	rawKids, okKids := members["kids"]
	rawType, okType := members["type"]
	if !okKids || !okType || len(members) != 2 {
		return nil, fmt.Errorf("%w: want exactly the members \"kids\" and \"type\"", ErrBadLicenseRequest)
	}
	var typ string
	if err := json.Unmarshal(rawType, &typ); err != nil || typ != "temporary" {
		return nil, fmt.Errorf("%w: type %s, want \"temporary\"", ErrBadLicenseRequest, rawType)
	}
	var strs []string
	if err := json.Unmarshal(rawKids, &strs); err != nil {
		return nil, fmt.Errorf("%w: kids: %w", ErrBadLicenseRequest, err)
	}
	if len(strs) == 0 || len(strs) > max {
		return nil, fmt.Errorf("%w: %d kids, want 1 to %d", ErrBadLicenseRequest, len(strs), max)
	}
	kids := make([]KID, 0, len(strs))
	seen := make(map[KID]bool, len(strs))
	for _, s := range strs {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("%w: kid %q is not 16 bytes in unpadded base64url", ErrBadLicenseRequest, s)
		}
		kid := KID(b)
		if !seen[kid] {
			seen[kid] = true
			kids = append(kids, kid)
		}
	}
	return kids, nil
}

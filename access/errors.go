package access

import (
	"errors"
	"net/http"
)

// The reasons a request is refused. Verify returns them bare on a cached
// token (no allocation) and wrapped with details on a token's first
// verification; test with errors.Is, map with Status and Reason.
var (
	// ErrNoToken: the request has no token. 401.
	ErrNoToken = errors.New("no token")
	// ErrInvalid: the token is malformed, has a bad signature, another
	// algorithm than EdDSA, a key id the Verifier does not hold, or claims
	// it cannot use. 403 invalid.
	ErrInvalid = errors.New("invalid token")
	// ErrRevoked: the token's session is in the revocation set. 403 revoked.
	ErrRevoked = errors.New("session revoked")
	// ErrExpired: the token's exp has passed. 403 expired.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: the token's nbf has not come yet; kept apart from
	// ErrExpired because it points at clocks out of step, not at a viewer
	// who stayed too long. 403 not-yet-valid.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrWrongStream: the token is for another stream. 403 wrong-stream.
	ErrWrongStream = errors.New("token for another stream")
	// ErrNetwork: the client is outside the token's network (cidr).
	// 403 network.
	ErrNetwork = errors.New("client outside the token's network")
	// ErrTooManyAddresses: the token is in use from as many addresses as
	// it allows, and this is another one. 403 too-many-addresses.
	ErrTooManyAddresses = errors.New("token in use from too many addresses")
	// ErrAddressDenied: Rules do not let the client's address watch.
	// 403 address.
	ErrAddressDenied = errors.New("client address denied")
)

// reasons pairs each sentinel with its reason, in the order Reason tests
// them.
func reasons() [9]struct {
	err    error
	reason string
} {
	return [...]struct {
		err    error
		reason string
	}{
		{ErrNoToken, "no-token"},
		{ErrInvalid, "invalid"},
		{ErrRevoked, "revoked"},
		{ErrExpired, "expired"},
		{ErrNotYetValid, "not-yet-valid"},
		{ErrWrongStream, "wrong-stream"},
		{ErrNetwork, "network"},
		{ErrTooManyAddresses, "too-many-addresses"},
		{ErrAddressDenied, "address"},
	}
}

// Reason returns the short reason for a refusal, for the body of a 403,
// a log line or a metric label: "" for nil, "no-token", "invalid",
// "revoked", "expired", "not-yet-valid", "wrong-stream", "network",
// "too-many-addresses", "address"; "invalid" for an error of no other
// kind (fail closed).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons() {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}

// Reasons returns every reason Reason can give for an error, for
// metrics that create their labels up front.
func Reasons() []string {
	rs := reasons()
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.reason
	}
	return out
}

// Status returns the HTTP status for err: 200 for nil, 401 for
// ErrNoToken (RFC 9110 15.5.2: the request lacks credentials; the answer
// must carry a WWW-Authenticate header, 11.6.1), 403 for any other
// refusal (15.5.4: the server understood the request and refuses it).
func Status(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

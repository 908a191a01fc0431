package access

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestReasonStatus(t *testing.T) {
	tests := []struct {
		err    error
		reason string
		status int
	}{
		{nil, "", 200},
		{ErrNoToken, "no-token", 401},
		{ErrInvalid, "invalid", 403},
		{fmt.Errorf("%w: bad signature", ErrInvalid), "invalid", 403},
		{ErrRevoked, "revoked", 403},
		{ErrExpired, "expired", 403},
		{ErrNotYetValid, "not-yet-valid", 403},
		{ErrWrongStream, "wrong-stream", 403},
		{ErrNetwork, "network", 403},
		{ErrTooManyAddresses, "too-many-addresses", 403},
		{ErrAddressDenied, "address", 403},
		{errors.New("something else"), "invalid", 403},
	}
	for _, tt := range tests {
		if r, s := Reason(tt.err), Status(tt.err); r != tt.reason || s != tt.status {
			t.Errorf("%v: %q %d, want %q %d", tt.err, r, s, tt.reason, tt.status)
		}
		if tt.err != nil && !slices.Contains(Reasons(), Reason(tt.err)) {
			t.Errorf("%v: reason %q not in Reasons()", tt.err, Reason(tt.err))
		}
	}
}

package gslb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
)

// ErrInvalidReport is wrapped by the errors of ParseReport and
// Report.Validate.
var ErrInvalidReport = errors.New("invalid report")

// Report is what a PoP tells the balancer every interval, as JSON on
// POST /api/report.
type Report struct {
	// Name is the PoP's name, as in the map.
	Name string `json:"name"`
	// URL is the base URL viewers are sent to: http or https, a host, an
	// optional path prefix, no query. /live/{stream}/… is appended.
	URL string `json:"url"`
	// Viewers is the number of clients active at the PoP.
	Viewers int64 `json:"viewers"`
	// EgressBPS is the PoP's egress over the last interval, in bits/s.
	EgressBPS float64 `json:"egress_bps"`
	// CapacityViewers is how many viewers the PoP takes. Zero means no
	// limit on viewers.
	CapacityViewers int64 `json:"capacity_viewers"`
	// CapacityBPS is the egress the PoP takes, in bits/s. Zero means no
	// limit on egress.
	CapacityBPS float64 `json:"capacity_bps"`
	// Draining asks for no new viewers: the PoP is going away.
	Draining bool `json:"draining"`
	// Overloaded says the PoP takes no new viewers now: it is short of
	// CPU (or at its capacity) and answers new sessions 503, while it
	// serves those it has. Unlike Draining, it passes.
	Overloaded bool `json:"overloaded,omitempty"`
}

// Limits of a report.
const (
	// MaxReportBytes bounds one report's JSON.
	MaxReportBytes = 4 << 10
	maxReportURL   = 1024
	maxViewers     = 1 << 40
	maxBPS         = 1e15 // a petabit per second
)

// ParseReport parses and validates one report. Unknown fields and
// trailing data are errors.
func ParseReport(data []byte) (Report, error) {
	var r Report
	if len(data) > MaxReportBytes {
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidReport, len(data), MaxReportBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Report{}, fmt.Errorf("%w: data after the JSON object", ErrInvalidReport)
	}
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	r.URL = strings.TrimRight(r.URL, "/")
	return r, nil
}

// Validate checks every field of r.
func (r Report) Validate() error {
	if !validPoPName.MatchString(r.Name) {
		return fmt.Errorf("%w: name %q must match %s", ErrInvalidReport, r.Name, validPoPName)
	}
	if err := checkBaseURL(r.URL); err != nil {
		return fmt.Errorf("%w: url: %w", ErrInvalidReport, err)
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{
		{"viewers", float64(r.Viewers), maxViewers},
		{"capacity_viewers", float64(r.CapacityViewers), maxViewers},
		{"egress_bps", r.EgressBPS, maxBPS},
		{"capacity_bps", r.CapacityBPS, maxBPS},
	} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > f.max {
			return fmt.Errorf("%w: %s is %v, want 0 to %v", ErrInvalidReport, f.name, f.v, f.max)
		}
	}
	return nil
}

// checkBaseURL accepts an absolute http or https URL with a host and no
// user, query or fragment: viewers are redirected to it.
func checkBaseURL(s string) error {
	if len(s) > maxReportURL {
		return fmt.Errorf("longer than %d bytes", maxReportURL)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http or https URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil || u.Opaque != "" || strings.ContainsAny(s, "?#"):
		return fmt.Errorf("%q must be scheme://host[:port][/path], without user, query or fragment", s)
	case u.String() != s:
		return fmt.Errorf("%q is not in canonical form (%q)", s, u.String())
	}
	return nil
}

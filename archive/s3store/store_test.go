package s3store_test

import (
	"testing"

	"github.com/golivestream/live/archive/s3store"
	"github.com/golivestream/live/archive/s3store/s3test"
	"github.com/golivestream/live/archive/storetest"
)

func TestConformance(t *testing.T) {
	for _, url := range []string{"s3://archive", "s3://archive/fleet/eu1"} {
		t.Run(url, func(t *testing.T) {
			storetest.Conformance(t, s3test.New(t, url))
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, bucket, prefix string
		ok                  bool
	}{
		{"s3://b", "b", "", true},
		{"s3://b/", "b", "", true},
		{"s3://b/p/q", "b", "p/q/", true},
		{"s3://b/p/q/", "b", "p/q/", true},
		{"http://b/p", "", "", false},
		{"s3:///p", "", "", false},
		{"s3://b/../p", "", "", false},
		{"s3://b/p?x=1", "", "", false},
		{"s3://u:pw@b/p", "", "", false},
	}
	for _, tc := range tests {
		b, p, err := s3store.ParseURL(tc.url)
		if (err == nil) != tc.ok || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v", tc.url, b, p, err)
		}
	}
}

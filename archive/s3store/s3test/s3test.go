// Package s3test starts a real S3 server for tests: gofakes3, in
// memory, serving HTTP on 127.0.0.1:0, with one bucket, "archive".
package s3test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/golivestream/live/archive/s3store"
)

// Bucket is the bucket the server holds.
const Bucket = "archive"

// New starts a server, closed when the test ends, and returns a store
// on it for url ("s3://archive" or "s3://archive/some/prefix").
func New(t testing.TB, url string) *s3store.Store {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	st, err := s3store.New(s3store.Config{
		URL:             url,
		Endpoint:        strings.TrimPrefix(srv.URL, "http://"),
		Insecure:        true,
		Region:          "us-east-1",
		AccessKeyID:     "test",
		SecretAccessKey: "testsecret",
		PathStyle:       true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

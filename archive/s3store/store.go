// Package s3store is an archive store in a bucket of an S3-compatible
// object store, under a key prefix, through github.com/minio/minio-go/v7.
//
// S3 PUTs are atomic (a reader sees the whole new object or the old
// one) and, once acknowledged, durable by the service's own guarantee;
// listing is strongly consistent with writes (as on AWS since 2020, and
// on the S3 servers we test against). S3 cannot append in place, so the
// store does not implement store.Appender: the archive writes its index
// as a series of whole objects instead.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/golivestream/live/archive/store"
)

// Config configures a Store.
type Config struct {
	// URL names the bucket and the key prefix: "s3://bucket" or
	// "s3://bucket/some/prefix". Required.
	URL string
	// Endpoint is the service's host and optional port. Empty means
	// "s3.amazonaws.com".
	Endpoint string
	// Insecure speaks plain HTTP to Endpoint. False (the zero value)
	// means HTTPS.
	Insecure bool
	// Region is the bucket's region. Empty means the client asks the
	// service (GetBucketLocation) on first use.
	Region string
	// AccessKeyID and SecretAccessKey are static credentials. Empty
	// means the usual chain: $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY, then $MINIO_ACCESS_KEY and
	// $MINIO_SECRET_KEY, then the instance's IAM role.
	AccessKeyID, SecretAccessKey string
	// PathStyle puts the bucket in the path rather than in the host
	// name. False (the zero value) lets the client choose: virtual hosts
	// for AWS, paths for other endpoints.
	PathStyle bool
	// Transport carries the requests. Nil means the client's default
	// transport.
	Transport http.RoundTripper
}

// Store is an S3 store. It is safe for concurrent use. Its requests are
// not retried by the client: the archive writer retries with its own
// backoff and counts each attempt.
type Store struct {
	client *minio.Client
	bucket string
	// prefix is "" or the URL's path with a trailing "/".
	prefix string
}

// ParseURL splits an "s3://bucket/prefix" URL into the bucket and the
// prefix (empty, or ending in "/").
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("s3store: url %q: %w", raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("s3store: url %q: want s3://bucket/prefix", raw)
	}
	p := strings.Trim(u.Path, "/")
	if p != "" {
		if !store.ValidKey(p) {
			return "", "", fmt.Errorf("s3store: url %q: prefix: %w", raw, store.ErrInvalidKey)
		}
		p += "/"
	}
	return u.Host, p, nil
}

// New makes a Store for cfg. It makes no request: a bucket that is
// missing or unreachable shows in the first call.
func New(cfg Config) (*Store, error) {
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	var creds *credentials.Credentials
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !cfg.Insecure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
		MaxRetries:   1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	return &Store{client: client, bucket: bucket, prefix: prefix}, nil
}

// object returns the S3 key of key, or an error when key is not valid.
func (s *Store) object(key string) (string, error) {
	if !store.ValidKey(key) {
		return "", fmt.Errorf("%w: %q", store.ErrInvalidKey, key)
	}
	return s.prefix + key, nil
}

// Put implements store.Store with one PutObject.
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, s.bucket, obj, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return mapErr("put "+key, err)
	}
	return nil
}

// Get implements store.Store with a ranged GetObject.
func (s *Store) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: offset %d: %w", key, off, store.ErrRange)
	}
	if n == 0 {
		return s.emptyAt(ctx, key, obj, off)
	}
	var opts minio.GetObjectOptions
	if off > 0 || n > 0 {
		end := int64(0) // to the end
		if n > 0 {
			end = off + n - 1
		}
		if err := opts.SetRange(off, end); err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
	}
	o, err := s.client.GetObject(ctx, s.bucket, obj, opts)
	if err != nil {
		return nil, mapErr("get "+key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return s.emptyAt(ctx, key, obj, off)
		}
		return nil, mapErr("get "+key, err)
	}
	if n > 0 && int64(len(b)) > n { // a server that ignored the range
		b = b[:n]
	}
	return b, nil
}

// emptyAt answers a read of nothing at off: empty when off is at most
// the object's size, ErrRange past it.
func (s *Store) emptyAt(ctx context.Context, key, obj string, off int64) ([]byte, error) {
	info, err := s.client.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return nil, mapErr("get "+key, err)
	}
	if off > info.Size {
		return nil, fmt.Errorf("get %s: offset %d of %d bytes: %w", key, off, info.Size, store.ErrRange)
	}
	return []byte{}, nil
}

// List implements store.Store with a delimited ListObjects.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Entry, error) {
	if prefix != "" && !store.ValidPrefix(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", store.ErrInvalidKey, prefix)
	}
	var out []store.Entry
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix}) {
		if o.Err != nil {
			return nil, mapErr("list "+prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		e := store.Entry{Key: key, Dir: strings.HasSuffix(key, "/"), ModTime: o.LastModified}
		if !e.Dir {
			e.Size = o.Size
		}
		out = append(out, e)
	}
	store.Sort(out)
	return out, nil
}

// DeletePrefix implements store.Store: a recursive listing fed to
// multi-object deletes.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if !store.ValidPrefix(prefix) {
		return fmt.Errorf("%w: prefix %q", store.ErrInvalidKey, prefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing if a delete fails
	objs := s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true})
	var listErr error
	feed := make(chan minio.ObjectInfo)
	go func() { // owned here: RemoveObjects drains feed until it is closed
		defer close(feed)
		for o := range objs {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			select {
			case feed <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for re := range s.client.RemoveObjects(ctx, s.bucket, feed, minio.RemoveObjectsOptions{}) {
		if re.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", strings.TrimPrefix(re.ObjectName, s.prefix), re.Err))
			cancel()
		}
	}
	// RemoveObjects returns once feed is closed: the feeder has ended.
	if listErr != nil {
		errs = append(errs, listErr)
	}
	if err := errors.Join(errs...); err != nil {
		return mapErr("delete "+prefix, err)
	}
	return nil
}

// mapErr wraps err for op with store.ErrNotFound, store.ErrRange or
// store.ErrFull where the service's error code says so.
func mapErr(op string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		return fmt.Errorf("%s: %w: %w", op, store.ErrNotFound, err)
	case resp.Code == "InvalidRange":
		return fmt.Errorf("%s: %w: %w", op, store.ErrRange, err)
	case resp.Code == "QuotaExceeded", resp.Code == "XMinioStorageFull",
		resp.StatusCode == http.StatusInsufficientStorage:
		return fmt.Errorf("%s: %w: %w", op, store.ErrFull, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

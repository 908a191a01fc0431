package ingest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// PublishRequest is what a publisher asks for, as Config.Authorize sees
// it.
type PublishRequest struct {
	// Name is the stream name, already checked (see ParseStreamPath).
	Name string
	// Query holds the parameters after the stream name: a publisher that
	// publishes "cam1?key=SECRET" (OBS: stream key "cam1?key=SECRET";
	// ffmpeg: rtmp://HOST/live/cam1?key=SECRET) sends key=SECRET.
	Query url.Values
	// Remote is the publisher's address.
	Remote net.Addr
}

// ErrUnauthorized refuses a publisher that Config.Authorize turned down;
// ErrAuthUnavailable one it could not decide on (HTTPAuthorizer's service
// did not answer).
var (
	ErrUnauthorized    = errors.New("not authorized to publish")
	ErrAuthUnavailable = errors.New("publish authorization service unavailable")
)

// KeyAuthorizer lets publish only those who give key as their "key"
// parameter.
func KeyAuthorizer(key string) func(context.Context, PublishRequest) error {
	return func(_ context.Context, r PublishRequest) error {
		if subtle.ConstantTimeCompare([]byte(r.Query.Get("key")), []byte(key)) != 1 {
			return fmt.Errorf("%w: wrong or missing key", ErrUnauthorized)
		}
		return nil
	}
}

// HTTPAuthorizer asks an HTTP service whether a publisher may publish, as
// nginx-rtmp's on_publish does: it POSTs a form with call=publish, name,
// addr (the publisher's IP) and the publisher's parameters (key, ...) to
// endpoint, and lets publish on a 2xx answer. Any other status refuses;
// so does a service that cannot be reached (fail closed), with an error
// that says so. client nil means http.DefaultClient; the context bounds
// the call.
func HTTPAuthorizer(endpoint string, client *http.Client) func(context.Context, PublishRequest) error {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, r PublishRequest) error {
		form := url.Values{}
		for k, v := range r.Query {
			form[k] = v
		}
		form.Set("call", "publish")
		form.Set("name", r.Name)
		if r.Remote != nil {
			host, _, err := net.SplitHostPort(r.Remote.String())
			if err != nil {
				host = r.Remote.String()
			}
			form.Set("addr", host)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return fmt.Errorf("publish authorization: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%w: the authorization service answered %s", ErrUnauthorized, resp.Status)
		}
		return nil
	}
}

// authorize asks Config.Authorize, if any, whether c may publish name.
func (c *conn) authorize(name string, query url.Values) error {
	auth := c.srv.cfg.Authorize
	if auth == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.ReadTimeout)
	defer cancel()
	return auth(ctx, PublishRequest{Name: name, Query: query, Remote: c.nc.RemoteAddr()})
}

// publishTarget returns the path and the parameters a publisher asked
// for. Parameters usually follow the stream name (stream key
// "cam1?key=K"), but some give them with the server URL instead (OBS
// server "rtmp://HOST/live?key=K", stream key "cam1"); gortmplib then
// reads "/live?key=K/cam1", and the name is taken back out of the query.
func publishTarget(app string, u *url.URL) (string, url.Values) {
	path, raw := u.Path, u.RawQuery
	if path == "/"+app {
		if i := strings.LastIndexByte(raw, '/'); i >= 0 {
			name := raw[i+1:]
			raw = raw[:i]
			if j := strings.IndexByte(name, '?'); j >= 0 {
				raw += "&" + name[j+1:]
				name = name[:j]
			}
			path += "/" + name
		}
	}
	q, _ := url.ParseQuery(raw)
	return path, q
}

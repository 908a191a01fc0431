package ingest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/publisher"
)

func TestKeyAuthorizer(t *testing.T) {
	auth := KeyAuthorizer("s3cret")
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"key=s3cret", true},
		{"key=s3cret&other=1", true},
		{"", false},
		{"key=", false},
		{"key=s3cre", false},
		{"key=s3cretX", false},
		{"Key=s3cret", false},
	} {
		q, _ := url.ParseQuery(tc.query)
		err := auth(context.Background(), PublishRequest{Name: "cam", Query: q})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnauthorized)) {
			t.Errorf("query %q: %v, want allowed %v", tc.query, err, tc.ok)
		}
	}
}

func TestHTTPAuthorizer(t *testing.T) {
	type call struct{ form url.Values }
	calls := make(chan call, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		calls <- call{r.PostForm}
		switch r.PostForm.Get("key") {
		case "good":
			w.WriteHeader(http.StatusNoContent)
		case "slow":
			<-r.Context().Done()
		default:
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	auth := HTTPAuthorizer(srv.URL, srv.Client())
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 50000}
	ask := func(ctx context.Context, key string) error {
		return auth(ctx, PublishRequest{Name: "cam1", Query: url.Values{"key": {key}}, Remote: remote})
	}

	if err := ask(context.Background(), "good"); err != nil {
		t.Errorf("good key: %v", err)
	}
	got := (<-calls).form
	for k, want := range map[string]string{"call": "publish", "name": "cam1", "addr": "192.0.2.7", "key": "good"} {
		if got.Get(k) != want {
			t.Errorf("form %s=%q, want %q (form %v)", k, got.Get(k), want, got)
		}
	}

	if err := ask(context.Background(), "bad"); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "403") {
		t.Errorf("bad key: %v, want ErrUnauthorized naming the status", err)
	}
	<-calls

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ask(ctx, "slow"); !errors.Is(err, ErrAuthUnavailable) {
		t.Errorf("a service that does not answer in time: %v, want a refusal saying it is unavailable", err)
	}
	<-calls

	srv.Close()
	if err := ask(context.Background(), "good"); !errors.Is(err, ErrAuthUnavailable) {
		t.Errorf("a service that is down: %v, want a refusal saying it is unavailable", err)
	}
}

// A server with Authorize refuses a publisher without the key, with the
// reason, and accepts one with it.
func TestPublishAuthorized(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, base := startGated(t, Config{Authorize: KeyAuthorizer("s3cret"), Registerer: reg})
	h.release()
	clip := clipLoadDemo(t)
	err := publisher.Publish(context.Background(), publisher.Config{URL: base + "cam?key=wrong", Clip: clip, Loops: 1, Speed: -1})
	if !errors.Is(err, publisher.ErrRejected) || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("wrong key: %v, want a refusal saying not authorized", err)
	}
	if n := len(h.published); n != 0 {
		t.Errorf("the handler got %d streams from an unauthorized publisher", n)
	}
	if n := metricValue(t, reg, "live_ingest_refused_total", "reason", "unauthorized"); n != 1 {
		t.Errorf("refused unauthorized %v, want 1", n)
	}
	if err := publisher.Publish(context.Background(), publisher.Config{URL: base + "cam?key=s3cret", Clip: clip, Loops: 1, Speed: -1}); err != nil {
		t.Fatalf("right key: %v", err)
	}
	if name := await(t, h.published); name != "cam" {
		t.Errorf("published %q, want cam", name)
	}
	// The key with the server URL, as OBS users may give it: server
	// rtmp://HOST/live?key=KEY, stream key cam2.
	keyFirst := strings.Replace(base, "/live/", "/live?key=s3cret/", 1) + "cam2"
	if err := publisher.Publish(context.Background(), publisher.Config{URL: keyFirst, Clip: clip, Loops: 1, Speed: -1}); err != nil {
		t.Fatalf("key with the server URL: %v", err)
	}
	if name := await(t, h.published); name != "cam2" {
		t.Errorf("published %q, want cam2", name)
	}
}

func TestPublishTarget(t *testing.T) {
	for _, tc := range []struct {
		url, path, query string
	}{
		{"rtmp://h/live/cam", "/live/cam", ""},
		{"rtmp://h/live/cam?key=K", "/live/cam", "key=K"},
		{"rtmp://h/live?key=K/cam", "/live/cam", "key=K"},
		{"rtmp://h/live?key=K&u=1/cam?x=2", "/live/cam", "key=K&u=1&x=2"},
		{"rtmp://h/live?key=a/b/cam", "/live/cam", "key=a%2Fb"},
		{"rtmp://h/other?key=K/cam", "/other", "key=K%2Fcam"}, // another app: left to ParseStreamPath to refuse
		{"rtmp://h/live", "/live", ""},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		path, q := publishTarget("live", u)
		if path != tc.path || q.Encode() != tc.query {
			t.Errorf("%s: %q %q, want %q %q", tc.url, path, q.Encode(), tc.path, tc.query)
		}
	}
}

// FuzzPublishTarget checks that whatever URL a publisher's connect and
// publish commands make, taking the name and parameters apart neither
// panics nor yields a name unsafe as a path segment.
func FuzzPublishTarget(f *testing.F) {
	for _, s := range []string{"/live/cam?key=K", "/live?key=K/cam", "/live?a=b/c?d=e", "/live?/", "/live?key=%zz/cam"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		path, _ := publishTarget("live", u)
		name, err := ParseStreamPath("live", path)
		if err != nil {
			return
		}
		if !validName.MatchString(name) || path != "/live/"+name {
			t.Fatalf("%q gave the name %q", raw, name)
		}
	})
}

// An authorization that takes longer than ReadTimeout (a slow service,
// within its own bound) does not cost the publisher its read deadline.
func TestSlowAuthorize(t *testing.T) {
	const timeout = 300 * time.Millisecond
	slow := func(context.Context, PublishRequest) error {
		<-time.After(timeout + 100*time.Millisecond) // past the deadline set before it
		return nil
	}
	h, base := startGated(t, Config{Authorize: slow, ReadTimeout: timeout})
	h.release()
	if err := publisher.Publish(context.Background(), publisher.Config{URL: base + "slow", Clip: clipLoadDemo(t), Loops: 1, Speed: -1}); err != nil {
		t.Fatalf("publish after a slow authorization: %v", err)
	}
	if name := await(t, h.published); name != "slow" {
		t.Errorf("published %q", name)
	}
}

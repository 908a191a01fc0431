package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/pop"
)

// TestStreamsAPI: the list, and one stream by name as a waiting watch
// page asks for it, both with the PoP's figures; a private stream only
// by name; 404 for a stream the origin does not have, 502 when the
// origin's list cannot be had.
func TestStreamsAPI(t *testing.T) {
	streams := []streaminfo.Stream{{Name: "demo", Live: true, Started: "2026-11-21T12:00:00Z"}, {Name: "a b", Live: false},
		{Name: "priv", Live: true, Private: true}}
	var fail error
	s, err := New(Config{
		Streams: func(context.Context) ([]streaminfo.Stream, error) { return streams, fail },
		PoP:     func(string) pop.StreamStats { return pop.StreamStats{Requests: 10, OriginFetches: 2} },
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
		}
		return w.Code, w.Body.Bytes()
	}

	code, body := get("/api/streams")
	var list struct{ Streams []StreamView }
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list.Streams) != 2 ||
		list.Streams[0].Name != "demo" || list.Streams[1].Name != "a b" {
		t.Fatalf("list: %d %v %s; want demo and a b, not the private stream", code, err, body)
	}
	for _, tc := range []struct {
		path string
		want streaminfo.Stream
	}{
		{"/api/streams/demo", streams[0]},
		{"/api/streams/a%20b", streams[1]},
		{"/api/streams/priv", streams[2]},
	} {
		code, body := get(tc.path)
		var v StreamView
		if err := json.Unmarshal(body, &v); code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %v %s", tc.path, code, err, body)
		}
		if v.Name != tc.want.Name || v.Live != tc.want.Live || v.Started != tc.want.Started || v.Private != tc.want.Private ||
			v.PoP == nil || v.PoP.OriginFetches != 2 {
			t.Errorf("%s: %+v, want %+v with the PoP's figures", tc.path, v, tc.want)
		}
	}
	if code, _ := get("/api/streams/nope"); code != http.StatusNotFound {
		t.Errorf("unknown stream: %d, want 404", code)
	}
	streams, fail = nil, errors.New("origin down")
	s.cachedAt = s.cachedAt.Add(-2 * time.Second) // past the list's one-second reuse
	if code, _ := get("/api/streams/demo"); code != http.StatusBadGateway {
		t.Errorf("origin down: %d, want 502", code)
	}
}

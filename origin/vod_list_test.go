package origin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVODListPrivate: the lists of VODs and clips name a private
// stream's only to a request with the API token; a viewer who names the
// stream is told about its VODs (and needs a playback token to watch).
func TestVODListPrivate(t *testing.T) {
	k := newArchiveKit(t)
	access := func(name string) Access { return Access{Private: name == "secret"} }
	const token = "operator-token"
	srv, err := New(Config{Archive: k.w, ArchiveStore: k.store, Access: access, APIToken: token})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, name := range []string{"cam", "secret"} {
		f := publishFeed(t, srv, name, time.Second, true)
		f.run(6*time.Second, 0)
		k.flush(t)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/clips", strings.NewReader(`{"stream":"`+name+`","from":1,"to":3}`))
		req.Header.Set("Authorization", "Bearer "+token)
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("POST /api/clips for %s: %d %s", name, rec.Code, rec.Body)
		}
		f.sess.Close()
	}
	k.flush(t)
	// Its own /api/streams (which PoPs read) marks the private stream,
	// for the watch page's list to leave out.
	private := map[string]bool{}
	for _, si := range srv.Streams() {
		private[si.Name] = si.Private
	}
	if len(private) != 2 || !private["secret"] || private["cam"] {
		t.Errorf("/api/streams: private %v, want secret alone", private)
	}

	// An origin that did not see them live: every VOD from the store.
	later, err := New(Config{ArchiveStore: k.store, Access: access, APIToken: token})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	for _, tc := range []struct {
		name, path, auth string
		want             []string // the streams listed
	}{
		{"vods, viewer", "/api/vods", "", []string{"cam"}},
		{"vods, wrong token", "/api/vods", "Bearer guess", []string{"cam"}},
		{"vods, operator", "/api/vods", "Bearer " + token, []string{"cam", "secret"}},
		{"vods, private stream named", "/api/vods?stream=secret", "", []string{"secret"}},
		{"clips, viewer", "/api/clips", "", []string{"cam"}},
		{"clips, operator", "/api/clips", "Bearer " + token, []string{"cam", "secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			later.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			var list struct {
				VODs  []VODInfo
				Clips []ClipInfo
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range list.VODs {
				got = append(got, v.Stream)
			}
			for _, c := range list.Clips {
				got = append(got, c.Stream)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("lists %v, want %v: %s", got, tc.want, rec.Body)
			}
		})
	}
}

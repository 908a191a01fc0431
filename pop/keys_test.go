package pop

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/golivestream/live/access"
)

// keyOrigin answers the key paths of stream "priv" (private) and "pub"
// (public) with the request's method and body, as cacheable as it can:
// the PoP must make it private whatever the origin says.
func keyOrigin(t *testing.T) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if streamOf(r.URL.Path) == "priv" {
			h.Set(AccessHeader, "token")
		}
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("Content-Type", "application/json")
		body, _ := io.ReadAll(r.Body)
		w.Write([]byte(r.Method + " " + string(body)))
	})
}

func post(t *testing.T, c *http.Client, url, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, b := doAll(t, c, req)
	return resp.StatusCode, string(b), resp.Header
}

// TestKeyRequests: a key request of a private stream needs the viewer's
// token, checked at the node (401 without it, never reaching the
// origin), even when the node knows nothing of the stream yet; it is
// passed on, body and all, on every request, never cached nor coalesced,
// answered private, no-store; each client's key requests are bounded; a
// key path is never cached as an object.
func TestKeyRequests(t *testing.T) {
	origin := keyOrigin(t)
	kit := newTokenKit(t)
	_, base := startPoP(t, Config{Origins: []string{origin.URL}, Tokens: kit.v, KeyBurst: 4, KeyRate: 0.001})
	good := kit.token(t, access.Claims{Stream: "priv"})
	const license = "/live/priv/license"
	const key = "/live/priv/keys/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	c := clientFrom("127.0.0.3")

	// Not known yet: passed on, then refused on the answer's rules,
	// which the node learns.
	if code, body, _ := post(t, c, base+license, `{"kids":[]}`); code != http.StatusUnauthorized || strings.Contains(body, "POST") {
		t.Fatalf("first request without a token: %d %q", code, body)
	}
	n := origin.count(license)
	if code, _, _ := post(t, c, base+license, `{"kids":[]}`); code != http.StatusUnauthorized || origin.count(license) != n {
		t.Fatalf("known private stream without a token: %d, origin asked %d times", code, origin.count(license)-n)
	}
	for i, tc := range []struct {
		method, path, want string
	}{
		{http.MethodPost, license, `POST {"kids":["a"]}`},
		{http.MethodPost, key, `POST {"kids":["a"]}`},
		{http.MethodGet, key, `GET `},
	} {
		before := origin.count(tc.path)
		var code int
		var body string
		var h http.Header
		if tc.method == http.MethodPost {
			code, body, h = post(t, c, base+"/t/"+good+tc.path, `{"kids":["a"]}`)
		} else {
			code, body, h = getStatus(t, c, base+"/t/"+good+tc.path)
		}
		if code != http.StatusOK || body != tc.want || h.Get("Cache-Control") != "private, no-store" || h.Get("X-Cache") != "" {
			t.Errorf("%d %s %s: %d %q %v", i, tc.method, tc.path, code, body, h)
		}
		if origin.count(tc.path) != before+1 {
			t.Errorf("%s %s: the origin was asked %d times", tc.method, tc.path, origin.count(tc.path)-before)
		}
	}
	// A 5th request within the burst of 4 (the first two were refused
	// before counting): 429.
	post(t, c, base+"/t/"+good+license, `{}`)
	if code, _, h := post(t, c, base+"/t/"+good+license, `{}`); code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("over the key budget: %d", code)
	}
	// Another client has its own budget.
	if code, _, _ := post(t, clientFrom("127.0.0.7"), base+"/t/"+good+license, `{}`); code != http.StatusOK {
		t.Errorf("another client: %d", code)
	}
	// Other methods, other spellings.
	if code, _, _ := getStatus(t, c, base+"/t/"+good+license); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the license path: %d", code)
	}
	if code, _, _ := getStatus(t, c, base+"/t/"+good+"/live/priv/keys/0F1E2D3C4B5A69788796A5B4C3D2E1F0"); code != http.StatusNotFound {
		t.Errorf("another spelling of a KID: %d", code)
	}
}

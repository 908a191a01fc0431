package pop

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golivestream/live/access"
)

// accessOrigin serves stream "priv" as needing a token and denying
// 127.0.0.4, and stream "pub" as public.
func accessOrigin(t *testing.T) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if streamOf(r.URL.Path) == "priv" {
			h.Set(AccessHeader, "token")
			h.Set(DenyHeader, "127.0.0.4")
		}
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte("media of " + r.URL.Path))
	})
}

type tokenKit struct {
	priv ed25519.PrivateKey
	v    *access.Verifier
}

func newTokenKit(t testing.TB) *tokenKit {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := access.New(access.Config{Keys: access.KeySet{"k1": pub}})
	if err != nil {
		t.Fatal(err)
	}
	return &tokenKit{priv: priv, v: v}
}

func (k *tokenKit) token(t testing.TB, c access.Claims) string {
	t.Helper()
	if c.Expires.IsZero() {
		c.Expires = time.Now().Add(time.Hour)
	}
	tok, err := access.Issue(k.priv, "k1", c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAccess: a private stream needs a token in the path, checked at the
// edge: without one 401, with a bad one 403 and the reason; a denied
// request never reaches the origin; a public stream needs none; the
// networks a stream denies, and those the node denies, get 403.
func TestAccess(t *testing.T) {
	origin := accessOrigin(t)
	kit := newTokenKit(t)
	rules, err := access.ParseRules("", "127.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	s, base := startPoP(t, Config{Origins: []string{origin.URL}, Tokens: kit.v, Rules: rules})
	good := kit.token(t, access.Claims{Stream: "priv"})
	const seg = "/live/priv/e/v0/7.m4s"
	c := clientFrom("127.0.0.3")
	if code, body, _ := getStatus(t, c, base+"/t/"+good+seg); code != 200 || body != "media of "+seg {
		t.Fatalf("a valid token: %d %q", code, body)
	}
	before := origin.count(seg)
	for _, tc := range []struct {
		name, url string
		client    *http.Client
		code      int
		reason    string
	}{
		{"no token", base + seg, c, 401, ""},
		{"tampered", base + "/t/" + good[:len(good)-2] + "xx" + seg, c, 403, "invalid"},
		{"expired", base + "/t/" + kit.token(t, access.Claims{Stream: "priv", Expires: time.Now().Add(-time.Minute)}) + seg, c, 403, "expired"},
		{"another stream", base + "/t/" + kit.token(t, access.Claims{Stream: "other"}) + seg, c, 403, "wrong-stream"},
		{"network", base + "/t/" + kit.token(t, access.Claims{Stream: "priv", Network: mustPrefix(t, "10.0.0.0/8")}) + seg, c, 403, "network"},
		{"a network the stream denies", base + "/t/" + good + seg, clientFrom("127.0.0.4"), 403, "address"},
		{"a network the node denies", base + "/live/pub/e/v0/1.m4s", clientFrom("127.0.0.5"), 403, "address"},
	} {
		code, _, h := getStatus(t, tc.client, tc.url)
		if code != tc.code || h.Get(DeniedHeader) != tc.reason || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d, reason %q; want %d, %q", tc.name, code, h.Get(DeniedHeader), tc.code, tc.reason)
		}
		if tc.code == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if n := origin.count(seg); n != before {
		t.Errorf("denied requests reached the origin %d times", n-before)
	}
	if code, _, _ := getStatus(t, c, base+"/live/pub/e/v0/1.m4s"); code != 200 {
		t.Errorf("a public stream without a token: %d", code)
	}
	// The entry manifest asked for with ?token= is redirected into the
	// path form, which its relative URIs inherit.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/live/priv/index.m3u8?token=" + good + "&x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/t/"+good+"/live/priv/index.m3u8" {
		t.Errorf("?token=: %d Location %q", resp.StatusCode, loc)
	}
	if n := counterValue(s.metrics.denied["no-token"]); n != 1 {
		t.Errorf("live_pop_access_denied_total{reason=no-token} = %v, want 1", n)
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokensShareOneCopy: a thousand viewers with a thousand tokens of
// one private segment make one origin fetch.
func TestTokensShareOneCopy(t *testing.T) {
	origin := accessOrigin(t)
	kit := newTokenKit(t)
	_, base := startPoP(t, Config{Origins: []string{origin.URL}, Tokens: kit.v})
	const seg = "/live/priv/e/v0/8.m4s"
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = kit.token(t, access.Claims{Stream: "priv", Session: "viewer-" + strconv.Itoa(i)})
	}
	c := newClient()
	var wg sync.WaitGroup
	codes := make([]int, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, base+"/t/"+tok+seg, nil)
			resp, _ := doAll(t, c, req)
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Fatalf("viewer %d: %d", i, code)
		}
	}
	if n := origin.count(seg); n != 1 {
		t.Errorf("%d origin fetches for 1000 tokens, want 1", n)
	}
}

package protection

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var errNoToken = errors.New("no token")

// keyServerFixture serves a KeyServer for a Store holding one key of
// stream "cam" and one of stream "other". A request is authorized for the
// stream named by its "Authorization: Bearer <stream>" header.
type keyServerFixture struct {
	srv        *httptest.Server
	cam, other Key
}

func newKeyServerFixture(t *testing.T) *keyServerFixture {
	t.Helper()
	ctx := context.Background()
	store, err := NewStore(StoreConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	f := &keyServerFixture{}
	f.cam, _ = store.Key(ctx, Period{"cam", "1", 0})
	f.other, _ = store.Key(ctx, Period{"other", "1", 0})
	ks, err := NewKeyServer(KeyServerConfig{
		Keys: store,
		Authorize: func(r *http.Request, stream string) error {
			switch r.Header.Get("Authorization") {
			case "":
				return errNoToken
			case "Bearer " + stream:
				return nil
			}
			return errors.New("wrong stream")
		},
		Status: func(err error) int {
			if errors.Is(err, errNoToken) {
				return http.StatusUnauthorized
			}
			return http.StatusForbidden
		},
		MaxBody: 512,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/license/{stream}", ks.ServeLicense)
	mux.HandleFunc("/keys/{stream}/{kid}", ks.ServeKey)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *keyServerFixture) do(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func licenseBody(kids ...KID) string {
	var s []string
	for _, k := range kids {
		s = append(s, `"`+k.Base64URL()+`"`)
	}
	return `{"kids":[` + strings.Join(s, ",") + `],"type":"temporary"}`
}

// TestServeLicense: the key goes only to a request authorized for its
// stream, as a W3C ClearKey license; every answer is private and never
// stored.
func TestServeLicense(t *testing.T) {
	f := newKeyServerFixture(t)
	tests := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "POST", "/license/cam", "", licenseBody(f.cam.KID), 401},
		{"token for another stream", "POST", "/license/cam", "other", licenseBody(f.cam.KID), 403},
		{"another stream's key", "POST", "/license/cam", "cam", licenseBody(f.other.KID), 404},
		{"GET", "GET", "/license/cam", "cam", "", 405},
		{"not JSON", "POST", "/license/cam", "cam", "kids", 400},
		{"too large", "POST", "/license/cam", "cam", `{"kids":["` + strings.Repeat("A", 600) + `"],"type":"temporary"}`, 413},
		{"persistent", "POST", "/license/cam", "cam", strings.Replace(licenseBody(f.cam.KID), "temporary", "persistent-license", 1), 400},
		{"ok", "POST", "/license/cam", "cam", licenseBody(f.cam.KID), 200},
		{"ok with unknown KID too", "POST", "/license/cam", "cam", licenseBody(testKey.KID, f.cam.KID, f.other.KID), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := f.do(t, tt.method, tt.path, tt.token, tt.body)
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if cc := h.Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if code != 200 {
				if strings.Contains(string(body), base64.RawURLEncoding.EncodeToString(f.cam.Value[:])) {
					t.Error("key in a refusal")
				}
				return
			}
			var lic struct {
				Keys []struct{ Kty, K, Kid string }
				Type string
			}
			if err := json.Unmarshal(body, &lic); err != nil {
				t.Fatal(err)
			}
			if h.Get("Content-Type") != "application/json" || lic.Type != "temporary" || len(lic.Keys) != 1 {
				t.Fatalf("license %s", body)
			}
			k := lic.Keys[0]
			if k.Kty != "oct" || k.Kid != f.cam.KID.Base64URL() || k.K != base64.RawURLEncoding.EncodeToString(f.cam.Value[:]) {
				t.Errorf("key %+v", k)
			}
		})
	}
}

// TestAuthorizeBeforeBody: a refused request's body is not read.
func TestAuthorizeBeforeBody(t *testing.T) {
	ks, err := NewKeyServer(KeyServerConfig{
		Keys:      &Store{},
		Authorize: func(*http.Request, string) error { return errNoToken },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/license/cam", failingReader{t})
	r.SetPathValue("stream", "cam")
	w := httptest.NewRecorder()
	ks.ServeLicense(w, r)
	if w.Code != http.StatusForbidden || w.Header().Get("Cache-Control") != "private, no-store" {
		t.Errorf("status %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	if _, err := NewKeyServer(KeyServerConfig{Keys: &Store{}}); err == nil {
		t.Error("key server without Authorize")
	}
}

type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("body read before authorization")
	return 0, io.EOF
}

// TestServeKey: the raw key of an HLS identity URI, under the same rules.
func TestServeKey(t *testing.T) {
	f := newKeyServerFixture(t)
	tests := []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/keys/cam/" + f.cam.KID.String(), "", 401},
		{"token for another stream", "GET", "/keys/cam/" + f.cam.KID.String(), "other", 403},
		{"another stream's key", "GET", "/keys/cam/" + f.other.KID.String(), "cam", 404},
		{"bad KID", "GET", "/keys/cam/xyz", "cam", 404},
		{"POST", "POST", "/keys/cam/" + f.cam.KID.String(), "cam", 405},
		{"ok", "GET", "/keys/cam/" + f.cam.KID.String(), "cam", 200},
		{"ok hex", "GET", "/keys/cam/" + f.cam.KID.Hex(), "cam", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := f.do(t, tt.method, tt.path, tt.token, "")
			if code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
			if cc := h.Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if code == 200 && string(body) != string(f.cam.Value[:]) {
				t.Errorf("body %x", body)
			}
		})
	}
}

// TestKeyServerCORS: with CORSOrigin, a preflight is answered without a
// token and every answer allows the origin; without it, OPTIONS is refused.
func TestKeyServerCORS(t *testing.T) {
	store, _ := NewStore(StoreConfig{Secret: testSecret})
	for _, cors := range []string{"", "*"} {
		ks, err := NewKeyServer(KeyServerConfig{
			Keys:       store,
			Authorize:  func(*http.Request, string) error { return errNoToken },
			CORSOrigin: cors,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, serve := range []http.HandlerFunc{ks.ServeLicense, ks.ServeKey} {
			r := httptest.NewRequest("OPTIONS", "/license/cam", nil)
			r.SetPathValue("stream", "cam")
			w := httptest.NewRecorder()
			serve(w, r)
			h := w.Header()
			switch {
			case cors == "" && w.Code != http.StatusMethodNotAllowed:
				t.Errorf("OPTIONS without CORS: %d", w.Code)
			case cors != "" && (w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization")):
				t.Errorf("preflight: %d %v", w.Code, h)
			}
			if h.Get("Cache-Control") != "private, no-store" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
		}
	}
}

// licenseCases are license request bodies, valid or not, and the seeds of
// FuzzParseLicenseRequest.
var licenseCases = []struct {
	name string
	body string
	ok   bool
}{
	{"chrome", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary"}`, true},
	{"two and a repeat", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A","ERERESIiQzOERFVVVVVVVQ","DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary"}`, true},
	{"padded", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A=="],"type":"temporary"}`, false},
	{"standard base64", `{"kids":["Dxot+EtaaXiHlqW0w9Lh8A"],"type":"temporary"}`, false},
	{"15 bytes", `{"kids":["DxotPEtaaXiHlqW0w9Lh"],"type":"temporary"}`, false},
	{"no kids", `{"kids":[],"type":"temporary"}`, false},
	{"null kids", `{"kids":null,"type":"temporary"}`, false},
	{"no type", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A"]}`, false},
	{"persistent", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"persistent-license"}`, false},
	{"extra member", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary","x":1}`, false},
	{"capitalised", `{"KIDS":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary"}`, false},
	{"trailing data", `{"kids":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary"}{}`, false},
	{"array", `[]`, false},
	{"number kid", `{"kids":[1],"type":"temporary"}`, false},
	{"empty", ``, false},
}

// TestParseLicenseRequest: strict parsing of the table cases.
func TestParseLicenseRequest(t *testing.T) {
	for _, tt := range licenseCases {
		t.Run(tt.name, func(t *testing.T) {
			kids, err := parseLicenseRequest([]byte(tt.body), 4)
			if tt.ok && (err != nil || len(kids) == 0) {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadLicenseRequest) {
				t.Fatalf("error %v, want ErrBadLicenseRequest", err)
			}
		})
	}
	if kids, err := parseLicenseRequest([]byte(licenseCases[1].body), 4); err != nil || len(kids) != 2 {
		t.Errorf("repeated KID: %d kids, %v", len(kids), err)
	}
	if _, err := parseLicenseRequest([]byte(licenseCases[1].body), 2); !errors.Is(err, ErrBadLicenseRequest) {
		t.Errorf("more KIDs than max: %v", err)
	}
}

// FuzzParseLicenseRequest: never panics; what it accepts is 1 to max
// distinct KIDs.
func FuzzParseLicenseRequest(f *testing.F) {
	for _, tt := range licenseCases {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		kids, err := parseLicenseRequest(body, 4)
		if err != nil {
			return
		}
		if len(kids) == 0 || len(kids) > 4 {
			t.Fatalf("%d kids", len(kids))
		}
		seen := map[KID]bool{}
		for _, k := range kids {
			if seen[k] {
				t.Fatalf("kid %s", k)
			}
			seen[k] = true
		}
	})
}

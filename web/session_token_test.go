package web

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testSigner signs with a fixed key and a ten-minute lifetime.
func testSigner(key string) *sessionSigner {
	return &sessionSigner{key: []byte(key), ttl: 10 * time.Minute}
}

// tokenCases are token texts and how parseToken takes them; they also seed
// FuzzParseToken.
var tokenCases = []struct {
	name, text string
	want       error // nil: parses
}{
	{"issued", testSigner("0123456789abcdef").issue(testID(7), "demo", time.Unix(1_000_000, 0)).String(), nil},
	{"all zero", strings.Repeat("A", tokenChars), nil},
	{"empty", "", errSessionMissing},
	{"old page's random id", "abcdefghijklmnopqrstuvwx", errSessionForged},
	{"one short", strings.Repeat("A", tokenChars-1), errSessionForged},
	{"one long", strings.Repeat("A", tokenChars+1), errSessionForged},
	{"standard base64", strings.Repeat("+", tokenChars), errSessionForged},
	{"padding", strings.Repeat("A", tokenChars-2) + "==", errSessionForged},
	{"non-canonical last character", strings.Repeat("A", tokenChars-1) + "B", errSessionForged},
	{"not ascii", strings.Repeat("A", tokenChars-2) + "é", errSessionForged},
}

func TestParseToken(t *testing.T) {
	for _, tc := range tokenCases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := parseToken(tc.text)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && tok.String() != tc.text {
				t.Errorf("encodes back as %q", tok.String())
			}
		})
	}
}

// TestVerifyToken: only a token this signer issued for this stream, within
// its lifetime, is good.
func TestVerifyToken(t *testing.T) {
	g := testSigner("0123456789abcdef")
	now := time.Unix(1_000_000, 0)
	good := g.newSession("demo", now)
	flip := func(tok sessionToken, f func(*sessionToken)) string { f(&tok); return tok.String() }
	for _, tc := range []struct {
		name, text, stream string
		at                 time.Time
		want               error
	}{
		{"good", good.String(), "demo", now, nil},
		{"good at the end of its life", good.String(), "demo", now.Add(10 * time.Minute), nil},
		{"renewed", g.issue(good.id, "demo", now.Add(9*time.Minute)).String(), "demo", now.Add(15 * time.Minute), nil},
		{"no session", "", "demo", now, errSessionMissing},
		{"expired", good.String(), "demo", now.Add(10*time.Minute + time.Second), errSessionExpired},
		{"issued in the future", g.issue(good.id, "demo", now.Add(2*time.Minute)).String(), "demo", now, errSessionExpired},
		{"another stream's", good.String(), "other", now, errSessionForged},
		{"another key's", testSigner("fedcba9876543210").issue(good.id, "demo", now).String(), "demo", now, errSessionForged},
		{"bad signature", flip(good, func(t *sessionToken) { t.mac[0] ^= 1 }), "demo", now, errSessionForged},
		{"another id, same signature", flip(good, func(t *sessionToken) { t.id[15] ^= 1 }), "demo", now, errSessionForged},
		{"issue time moved on", flip(good, func(t *sessionToken) { t.issued += 600 }), "demo", now.Add(15 * time.Minute), errSessionForged},
		{"random id", "abcdefghijklmnopqrstuvwx", "demo", now, errSessionForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := g.verify(tc.text, tc.stream, tc.at)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && tok.id != good.id {
				t.Errorf("session %x, want %x", tok.id, good.id)
			}
		})
	}
}

// FuzzParseToken: tokens come from anyone; whatever the text, parsing and
// verifying do not panic, a parsed token has one spelling, and nothing but
// the issued token verifies.
func FuzzParseToken(f *testing.F) {
	for _, tc := range tokenCases {
		f.Add(tc.text)
	}
	g := testSigner("0123456789abcdef")
	now := time.Unix(1_000_000, 0)
	issued := tokenCases[0].text
	f.Fuzz(func(t *testing.T, text string) {
		tok, err := parseToken(text)
		if err != nil {
			if !errors.Is(err, errSessionMissing) && !errors.Is(err, errSessionForged) {
				t.Fatalf("error %v", err)
			}
		} else if tok.String() != text {
			t.Fatalf("%q parses, but encodes as %q", text, tok.String())
		}
		if _, err := g.verify(text, "demo", now); err == nil && text != issued {
			t.Fatalf("%q verifies", text)
		}
	})
}

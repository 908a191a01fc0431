package app

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWarnUnkeptKeys: encrypted streams archived with keys of a random
// secret get a WARN at start (their VODs die with the process); with a
// secret, or without an archive, or without encryption, none.
func TestWarnUnkeptKeys(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "key.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(keySecretEnv, "")
	for _, tc := range []struct {
		args    []string
		archive bool
		warn    bool
	}{
		{[]string{"-encrypt"}, true, true},
		{[]string{"-encrypt", "-key-secret", secret}, true, false},
		{[]string{"-encrypt"}, false, false},
		{nil, true, false},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := AddFlags(fs, "players")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Config(io.Discard); err != nil {
			t.Fatal(err)
		}
		var a *Archive
		if tc.archive {
			a = &Archive{Store: newDirStore(t)}
		}
		var logs bytes.Buffer
		f.WarnUnkeptKeys(a, slog.New(slog.NewTextHandler(&logs, nil)))
		if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "-key-secret"); got != tc.warn {
			t.Errorf("%v, archive %v: warned %v, want %v: %q", tc.args, tc.archive, got, tc.warn, logs.String())
		}
	}
}

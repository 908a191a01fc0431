// Package mpdtest checks, for tests, that an MPD we serve is valid: it
// parses with dash-mpd, and it validates against the MPEG-DASH MPD XML
// schema (ISO/IEC 23009-1) with xmllint when the schema is at hand.
//
// The schema is not our text and stays out of the repository. It is
// looked up at $DASH_MPD_XSD, else at ../shared/schemas/dash/DASH-MPD.xsd
// beside the module's root. Without it the other checks still run and the
// test logs that the schema validation was not done, so that a fresh
// clone with nothing beside it passes; with $DASH_MPD_XSD_REQUIRED set
// (as .ci/run sets it) a missing schema fails the test.
package mpdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mpd "github.com/Eyevinn/dash-mpd/mpd"
)

// RequiredEnv names the variable that makes a missing schema a failure.
const RequiredEnv = "DASH_MPD_XSD_REQUIRED"

// Validate fails t unless body is an MPD that dash-mpd reads and, when
// the schema is at hand, that the schema validates.
func Validate(t testing.TB, body []byte) {
	t.Helper()
	if _, err := mpd.ReadFromString(string(body)); err != nil {
		t.Errorf("MPD does not parse: %v\n%s", err, body)
		return
	}
	xsd, err := Schema()
	if err != nil {
		if os.Getenv(RequiredEnv) != "" {
			t.Fatalf("MPD schema check: %v (%s is set)", err, RequiredEnv)
		}
		t.Logf("MPD schema validation not done: %v", err)
		return
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv(RequiredEnv) != "" {
			t.Fatalf("MPD schema check needs xmllint (the README's test command installs it): %v", err)
		}
		t.Logf("MPD schema validation not done: %v", err)
		return
	}
	f := filepath.Join(t.TempDir(), "manifest.mpd")
	if err := os.WriteFile(f, body, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, xmllint, "--noout", "--schema", xsd, f).CombinedOutput()
	if err != nil {
		t.Errorf("MPD does not validate against %s: %v\n%s\n%s", filepath.Base(xsd), err, out, body)
	}
}

// Schema returns the path of the MPD schema: $DASH_MPD_XSD, else
// ../shared/schemas/dash/DASH-MPD.xsd beside the module's root (the
// nearest folder up from the working directory with a go.mod).
func Schema() (string, error) {
	if p := os.Getenv("DASH_MPD_XSD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("DASH_MPD_XSD: %w", err)
		}
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(root), "shared", "schemas", "dash", "DASH-MPD.xsd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no $DASH_MPD_XSD, and %w", err)
	}
	return p, nil
}

// ModuleRoot returns the nearest folder up from the working directory
// that holds a go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

package transcode

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ladder.json")
	if err := os.WriteFile(file, []byte(`{"preset": "faster", "rungs": [{"height": 360, "bitrate": 800000}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		off     bool
		rungs   string
		preset  string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-transcode=false"}, off: true},
		{args: []string{"-ladder", "480p:1M", "-preset", "superfast", "-transcode-max", "3"}, rungs: "480p:1000k", preset: "superfast"},
		{args: []string{"-ladder-file", file}, rungs: "360p:800k", preset: "faster"},
		{args: []string{"-ladder-file", file, "-preset", "ultrafast"}, rungs: "360p:800k", preset: "ultrafast"},
		{args: []string{"-ladder", "480p:1M", "-ladder-file", file}, wantErr: "exclude"},
		{args: []string{"-ladder", "480:1M"}, wantErr: "-ladder"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config()
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.off != (cfg == nil):
			t.Errorf("%v: config %+v", tc.args, cfg)
		case cfg != nil && (ladderOrEmpty(cfg.Ladder) != tc.rungs || cfg.Preset != tc.preset):
			t.Errorf("%v: ladder %q preset %q, want %q %q", tc.args, ladderOrEmpty(cfg.Ladder), cfg.Preset, tc.rungs, tc.preset)
		}
	}
}

func ladderOrEmpty(r []Rung) string {
	if len(r) == 0 {
		return ""
	}
	return ladderString(r)
}

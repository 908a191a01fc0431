package transcode

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLadder(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Rung
		wantErr string
	}{
		{in: "720p:2500k,480p:1M, 240p:400000", want: []Rung{
			{Name: "720p", Height: 720, Bitrate: 2_500_000},
			{Name: "480p", Height: 480, Bitrate: 1_000_000},
			{Name: "240p", Height: 240, Bitrate: 400_000},
		}},
		{in: "1080p:4.5M", want: []Rung{{Name: "1080p", Height: 1080, Bitrate: 4_500_000}}},
		{in: "", wantErr: "no rungs"},
		{in: "720:2500k", wantErr: "HEIGHTp:BITRATE"},
		{in: "720p", wantErr: "HEIGHTp:BITRATE"},
		{in: "720p:fast", wantErr: "bit rate"},
		{in: "720p:-1k", wantErr: "bit rate"},
		{in: "721p:1M", wantErr: "even number"},
		{in: "720p:10k", wantErr: "50k to 100M"},
		{in: "1p:1M,2p:1M,3p:1M,4p:1M,5p:1M,6p:1M,7p:1M,8p:1M,9p:1M", wantErr: "at most 8"},
	} {
		got, err := ParseLadder(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLadder(%q): error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseLadder(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fc, err := LoadFile(write("ok.json", `{"preset": "faster", "rungs": [{"height": 360, "bitrate": 800000}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if fc.Preset != "faster" || !slices.Equal(fc.Rungs, []Rung{{Name: "360p", Height: 360, Bitrate: 800_000}}) {
		t.Errorf("LoadFile = %+v", fc)
	}
	for name, body := range map[string]string{
		"unknown.json": `{"rungs": [{"height": 360, "bitrate": 800000, "fps": 60}]}`,
		"empty.json":   `{"rungs": []}`,
		"odd.json":     `{"rungs": [{"height": 361, "bitrate": 800000}]}`,
		"broken.json":  `{"rungs": [`,
	} {
		if _, err := LoadFile(write(name, body)); err == nil {
			t.Errorf("LoadFile(%s) accepted %s", name, body)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("LoadFile of a missing file succeeded")
	}
}

func TestRungsFor(t *testing.T) {
	names := func(rs []Rung) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, tc := range []struct {
		height int
		want   []string
	}{
		{1080, []string{"720p", "480p", "240p"}},
		{720, []string{"720p", "480p", "240p"}},
		{360, []string{"240p"}},
		{144, nil},
	} {
		if got := names(rungsFor(DefaultLadder(), tc.height)); !slices.Equal(got, tc.want) {
			t.Errorf("rungsFor(%d) = %v, want %v", tc.height, got, tc.want)
		}
	}
}

func TestOnBoundary(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		d    time.Duration
		want bool
	}{
		{0, true},
		{3 * time.Second, true},
		{3*time.Second + 33*ms, true},   // the first frame after the boundary
		{3*time.Second - 1*ms, true},    // forced a hair early
		{3*time.Second + 100*ms, false}, // a tenth of a segment late
		{3*time.Second + 500*ms, false},
		{3*time.Second - 20*ms, false},
		{-time.Second, false},
	} {
		if got := onBoundary(tc.d, time.Second); got != tc.want {
			t.Errorf("onBoundary(%v) = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestDiff33(t *testing.T) {
	const wrap = int64(1) << 33
	for _, tc := range []struct{ a, b, want int64 }{
		{100, 40, 60},
		{40, 100, -60},
		{5, wrap - 5, 10}, // a wrapped past b
		{wrap - 5, 5, -10},
	} {
		if got := diff33(tc.a, tc.b); got != tc.want {
			t.Errorf("diff33(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/loadtest"
	"github.com/golivestream/live/loadtest/testpipeline"
)

// TestBinaryAgainstPipeline builds the command and runs it briefly against
// an in-process pipeline: it publishes, plays, prints the report, and
// writes the JSON and the PNG.
func TestBinaryAgainstPipeline(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "loadtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := testpipeline.Start(t)

	dir := t.TempDir()
	jsonFile, pngFile := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.png")
	cctx, ccancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, bin,
		"-targets", p.PoP, "-broadcasters", "1", "-rtmp", p.RTMP, "-publish-key", p.PublishKey,
		"-scenario", "ramp", "-players", "20", "-ramp", "2s", "-duration", "4s", "-dash", "0.5", "-ll", "0.5",
		"-metrics", p.PoP, "-json", jsonFile, "-plot", pngFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("loadtest: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "20 players") || !strings.Contains(stderr.String(), "viewers=") {
		t.Errorf("no report or no progress line:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Players != 20 || rep.Classes["segment"].Requests == 0 || len(rep.Series) != 4 || rep.Upstream == nil {
		t.Errorf("report: %d players, %d segment requests, %d seconds, upstream %v", rep.Players, rep.Classes["segment"].Requests, len(rep.Series), rep.Upstream)
	}
	if k := rep.PlayersByKind; k["ll-hls"]+k["ll-dash"] == 0 || k["hls"]+k["dash"] == 0 || rep.Classes["part"].Requests == 0 {
		t.Errorf("-ll 0.5: players by kind %v, %d parts", k, rep.Classes["part"].Requests)
	}
	png, err := os.ReadFile(pngFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Error("the plot is not a PNG")
	}
}

func TestParseFlags(t *testing.T) {
	sched := filepath.Join(t.TempDir(), "schedule.txt")
	if err := os.WriteFile(sched, []byte("0s 10\n5s 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		peak int
		err  bool
	}{
		{name: "steady", args: []string{"-players", "7"}, peak: 7},
		{name: "low latency", args: []string{"-players", "7", "-ll", "0.5"}, peak: 7},
		{name: "ramp", args: []string{"-scenario", "ramp", "-players", "50"}, peak: 50},
		{name: "flash", args: []string{"-scenario", "flash", "-players", "500"}, peak: 5000},
		{name: "schedule", args: []string{"-scenario", "schedule", "-schedule", sched}, peak: 20},
		{name: "unknown scenario", args: []string{"-scenario", "tsunami"}, err: true},
		{name: "missing schedule", args: []string{"-scenario", "schedule", "-schedule", sched + ".none"}, err: true},
		{name: "stray argument", args: []string{"extra"}, err: true},
		{name: "bad flag", args: []string{"-players", "many"}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if err == nil && cfg.Schedule.Peak() != tt.peak {
				t.Errorf("peak %d, want %d", cfg.Schedule.Peak(), tt.peak)
			}
		})
	}
}

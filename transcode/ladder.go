package transcode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Rung is one transcoded rendition of the ladder.
type Rung struct {
	// Name labels the rendition in logs and metrics: "720p".
	Name string `json:"name"`
	// Height is the picture height in pixels; the width keeps the source's
	// aspect ratio (rounded to an even number).
	Height int `json:"height"`
	// Bitrate is the target video bit rate in bits per second; the encoder's
	// buffer holds one second of it, so segments stay near it.
	Bitrate int `json:"bitrate"`
}

// DefaultLadder is used when Config.Ladder is empty: the source passes
// through, and these are made from it when they are not taller than it.
func DefaultLadder() []Rung {
	return []Rung{
		{Name: "720p", Height: 720, Bitrate: 2_500_000},
		{Name: "480p", Height: 480, Bitrate: 1_000_000},
		{Name: "240p", Height: 240, Bitrate: 400_000},
	}
}

// ParseLadder reads a ladder written as a flag value: comma-separated
// HEIGHTp:BITRATE entries, the bit rate with an optional k or M suffix:
// "720p:2500k,480p:1M,240p:400k".
func ParseLadder(s string) ([]Rung, error) {
	var rungs []Rung
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, rate, ok := strings.Cut(f, ":")
		h, err := strconv.Atoi(strings.TrimSuffix(name, "p"))
		if !ok || err != nil || !strings.HasSuffix(name, "p") {
			return nil, fmt.Errorf("ladder entry %q: want HEIGHTp:BITRATE, as 720p:2500k", f)
		}
		bps, err := parseBitrate(rate)
		if err != nil {
			return nil, fmt.Errorf("ladder entry %q: %w", f, err)
		}
		rungs = append(rungs, Rung{Name: name, Height: h, Bitrate: bps})
	}
	return rungs, checkLadder(rungs)
}

func parseBitrate(s string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mul, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mul, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bit rate %q: want a positive number with an optional k or M", s)
	}
	return int(v * float64(mul)), nil
}

// FileConfig is the JSON of a ladder file (see LoadFile).
type FileConfig struct {
	// Preset is the x264 preset; empty keeps the default.
	Preset string `json:"preset"`
	Rungs  []Rung `json:"rungs"`
}

// LoadFile reads a ladder file: {"preset": "veryfast", "rungs": [{"name":
// "720p", "height": 720, "bitrate": 2500000}, ...]}.
func LoadFile(path string) (FileConfig, error) {
	var fc FileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("ladder file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("ladder file %s: %w", path, err)
	}
	for i := range fc.Rungs {
		if fc.Rungs[i].Name == "" {
			fc.Rungs[i].Name = strconv.Itoa(fc.Rungs[i].Height) + "p"
		}
	}
	if err := checkLadder(fc.Rungs); err != nil {
		return fc, fmt.Errorf("ladder file %s: %w", path, err)
	}
	return fc, nil
}

// checkLadder refuses rungs an encoder cannot make.
func checkLadder(rungs []Rung) error {
	if len(rungs) == 0 {
		return errors.New("ladder has no rungs")
	}
	if len(rungs) > 8 {
		return fmt.Errorf("ladder has %d rungs, at most 8", len(rungs))
	}
	for _, r := range rungs {
		if r.Height < 64 || r.Height > 4320 || r.Height%2 != 0 {
			return fmt.Errorf("rung %s: height %d is not an even number from 64 to 4320", r.Name, r.Height)
		}
		if r.Bitrate < 50_000 || r.Bitrate > 100_000_000 {
			return fmt.Errorf("rung %s: bit rate %d is not from 50k to 100M", r.Name, r.Bitrate)
		}
	}
	return nil
}

// rungsFor returns the rungs not taller than a source of height: the
// ladder never upscales.
func rungsFor(ladder []Rung, height int) []Rung {
	var out []Rung
	for _, r := range ladder {
		if r.Height <= height {
			out = append(out, r)
		}
	}
	return out
}

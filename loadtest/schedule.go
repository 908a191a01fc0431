package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxViewers bounds the players of one run.
const MaxViewers = 200000

// Point is one point of a Schedule: Viewers players at At after the start.
type Point struct {
	At      time.Duration
	Viewers int
}

// Schedule says how many players run over time: linear between its
// points, the last point's count after it. Points are in increasing order
// of At, the first at 0.
type Schedule []Point

// Steady is n players from the start.
func Steady(n int) Schedule { return Schedule{{0, n}} }

// Ramp grows from 0 to n players over d, then holds.
func Ramp(n int, d time.Duration) Schedule { return Schedule{{0, 0}, {d, n}} }

// Flash is a flash crowd: n players for steady, then factor×n within rise,
// then holds.
func Flash(n int, steady, rise time.Duration, factor int) Schedule {
	return Schedule{{0, n}, {steady, n}, {steady + rise, n * factor}}
}

// Viewers returns how many players should run at t.
func (s Schedule) Viewers(t time.Duration) int {
	if len(s) == 0 {
		return 0
	}
	for i := 1; i < len(s); i++ {
		a, b := s[i-1], s[i]
		if t >= b.At {
			continue
		}
		if t <= a.At || b.At == a.At {
			return a.Viewers
		}
		f := float64(t-a.At) / float64(b.At-a.At)
		return a.Viewers + int(f*float64(b.Viewers-a.Viewers))
	}
	return s[len(s)-1].Viewers
}

// Peak returns the most players the schedule asks for.
func (s Schedule) Peak() int {
	peak := 0
	for _, p := range s {
		peak = max(peak, p.Viewers)
	}
	return peak
}

// CrowdAt returns when the crowd begins: where the schedule starts its
// last rise to its peak (the point before the first one at the peak).
// ok is false without a crowd: a schedule that starts at its peak, or
// rises to it from nobody (a ramp).
func (s Schedule) CrowdAt() (at time.Duration, ok bool) {
	peak := s.Peak()
	for i, p := range s {
		if p.Viewers != peak {
			continue
		}
		if i == 0 || s[i-1].Viewers == 0 {
			return 0, false
		}
		return s[i-1].At, true
	}
	return 0, false
}

// Validate reports whether the schedule is usable.
func (s Schedule) Validate() error {
	if len(s) == 0 {
		return errors.New("schedule: no points")
	}
	if s[0].At != 0 {
		return errors.New("schedule: the first point must be at 0")
	}
	for i, p := range s {
		if p.Viewers < 0 || p.Viewers > MaxViewers {
			return fmt.Errorf("schedule: point %d: %d viewers (0..%d)", i, p.Viewers, MaxViewers)
		}
		if i > 0 && p.At < s[i-1].At {
			return fmt.Errorf("schedule: point %d at %v is before the one before it", i, p.At)
		}
	}
	return nil
}

// ParseSchedule reads a schedule file: either JSON, a list of
// {"at": "30s", "viewers": 100} (at is a Go duration string), or text, one
// point a line as "AT VIEWERS" ("30s 100"), with blank lines and lines
// starting with '#' ignored. The result is validated.
func ParseSchedule(data []byte) (Schedule, error) {
	var s Schedule
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		var points []struct {
			At      string `json:"at"`
			Viewers int    `json:"viewers"`
		}
		if err := json.Unmarshal(t, &points); err != nil {
			return nil, fmt.Errorf("schedule: %w", err)
		}
		for i, p := range points {
			at, err := time.ParseDuration(p.At)
			if err != nil {
				return nil, fmt.Errorf("schedule: point %d: %w", i, err)
			}
			s = append(s, Point{at, p.Viewers})
		}
	} else {
		lines := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; lines.Scan(); n++ {
			line := strings.TrimSpace(lines.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				return nil, fmt.Errorf("schedule: line %d: want \"AT VIEWERS\"", n)
			}
			at, err := time.ParseDuration(f[0])
			if err != nil {
				return nil, fmt.Errorf("schedule: line %d: %w", n, err)
			}
			v, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("schedule: line %d: %w", n, err)
			}
			s = append(s, Point{at, v})
		}
		if err := lines.Err(); err != nil {
			return nil, fmt.Errorf("schedule: %w", err)
		}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

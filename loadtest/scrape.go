package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape is what the metrics endpoints said at one moment.
type scrape struct {
	samples map[string][]sample // by endpoint
	errors  []string            // endpoints that did not answer, and why
}

// sum adds up the samples of endpoint named name whose labels include want.
func (s *scrape) sum(endpoint, name string, want map[string]string) float64 {
	var total float64
	for _, sm := range s.samples[endpoint] {
		if sm.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if sm.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += sm.value
		}
	}
	return total
}

// scrapeAll reads every configured metrics endpoint; nil without any.
func (r *run) scrapeAll(ctx context.Context) *scrape {
	if len(r.cfg.Metrics) == 0 {
		return nil
	}
	s := &scrape{samples: map[string][]sample{}}
	for _, u := range r.cfg.Metrics {
		if !strings.HasSuffix(u, "/metrics") {
			u = strings.TrimSuffix(u, "/") + "/metrics"
		}
		got, err := r.scrapeOne(ctx, u)
		if err != nil {
			r.log.Warn("metrics not read", "url", u, "error", err)
			s.errors = append(s.errors, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		s.samples[u] = got
	}
	return s
}

func (r *run) scrapeOne(ctx context.Context, u string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.metrics.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(body)
}

// parseMetrics reads the Prometheus text format (version 0.0.4): comment
// lines are skipped, every other line is `name{label="value",...} value
// [timestamp]`.
func parseMetrics(body []byte) ([]sample, error) {
	var out []sample
	lines := bufio.NewScanner(bytes.NewReader(body))
	lines.Buffer(nil, 1<<20)
	for n := 1; lines.Scan(); n++ {
		line := strings.TrimSpace(lines.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	return out, lines.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t,")
			if line == "" {
				return s, errors.New("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || eq+1 >= len(line) || line[eq+1] != '"' {
				return s, errors.New("bad label")
			}
			key := strings.TrimSpace(line[:eq])
			val, rest, err := unquoteLabel(line[eq+2:])
			if err != nil {
				return s, err
			}
			s.labels[key], line = val, rest
		}
	}
	f := strings.Fields(line)
	if len(f) == 0 || len(f) > 2 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("value: %w", err)
	}
	s.value = v
	return s, nil
}

// unquoteLabel reads a label value up to its closing quote, with the
// escapes \\, \" and \n; it returns the value and what follows the quote.
func unquoteLabel(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("bad escape")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated label value")
}

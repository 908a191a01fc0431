package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
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
		if sm.name == name && hasLabels(sm.labels, want) {
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

// bucketCounts are a Prometheus histogram's cumulative bucket counts by
// upper bound ("le"), summed over endpoints, the later scrape less the
// earlier. The zero value is empty.
type bucketCounts struct {
	counts map[float64]float64
}

// add adds, for the series of histogram name whose labels include want,
// the counts of after less those of before.
func (h *bucketCounts) add(after, before []sample, name string, want map[string]string) {
	name += "_bucket"
	for _, s := range after {
		if s.name != name || !hasLabels(s.labels, want) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		prev := 0.0
		for _, b := range before {
			if b.name == name && b.labels["le"] == s.labels["le"] && hasLabels(b.labels, want) {
				prev = b.value
				break
			}
		}
		if h.counts == nil {
			h.counts = map[float64]float64{}
		}
		h.counts[le] += s.value - prev
	}
}

func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// latency returns the histogram's percentiles, in milliseconds of its
// seconds, interpolated within buckets as histogram_quantile does; max
// is the upper bound of the highest bucket used. ok is false when empty.
func (h *bucketCounts) latency() (Latency, bool) {
	bounds := slices.Sorted(maps.Keys(h.counts))
	if len(bounds) == 0 {
		return Latency{}, false
	}
	total := h.counts[bounds[len(bounds)-1]]
	if total <= 0 {
		return Latency{}, false
	}
	quantile := func(q float64) float64 {
		rank := q * total
		lo, below := 0.0, 0.0
		for _, hi := range bounds {
			c := h.counts[hi]
			if c >= rank {
				if math.IsInf(hi, 1) || c == below {
					return lo
				}
				return lo + (hi-lo)*(rank-below)/(c-below)
			}
			lo, below = hi, c
		}
		return lo
	}
	l := Latency{Count: int64(total), P50: 1000 * quantile(0.5), P90: 1000 * quantile(0.9), P99: 1000 * quantile(0.99)}
	lo := 0.0
	for _, hi := range bounds {
		if h.counts[hi] >= total {
			if math.IsInf(hi, 1) {
				hi = lo
			}
			l.Max = 1000 * hi
			break
		}
		lo = hi
	}
	return l, true
}

package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report for people: the summary, the per-class
// table, errors, hosts, upstream figures, and the time series (one row
// every step seconds; 0 means a step that gives at most 30 rows).
func (rep *Report) WriteTable(w io.Writer, step int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	fmt.Fprintf(w, "load test: %.0f s, %d players (peak %d at once) on %s, streams %s\n",
		rep.Seconds, rep.Players, rep.PeakViewers, strings.Join(rep.Targets, ","), strings.Join(rep.Streams, ","))
	fmt.Fprintf(w, "stalls: %d (%d players, stall rate %.4f, max one-minute user stall rate %.4f, %.4f per viewer-minute)\n",
		rep.Stalls, rep.StalledPlayers, rep.StallRate, rep.MaxStallRate1m, rep.StallsPerViewerMinute)
	if c, w2 := rep.BeforeCrowd, rep.WithCrowd; c != nil && w2 != nil && rep.CrowdAt != nil {
		fmt.Fprintf(w, "stalls by start: before the crowd (%.0f s): %d players, %d stalled, stall rate %.4f; with it: %d players, %d stalled, stall rate %.4f\n",
			*rep.CrowdAt, c.Players, c.StalledPlayers, c.StallRate, w2.Players, w2.StalledPlayers, w2.StallRate)
	}
	fmt.Fprintf(w, "rebuffering: %d empty-buffer spells of any length, rebuffer ratio %.5f\n", rep.Rebuffers, rep.RebufferRatio)
	fmt.Fprintf(w, "first segment: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms (%d players; %d never started)\n",
		rep.FirstSegment.P50, rep.FirstSegment.P90, rep.FirstSegment.P99, rep.FirstSegment.Count, rep.NeverStarted)
	for _, k := range []string{"hls", "ll-hls", "dash", "ll-dash"} {
		if n := rep.PlayersByKind[k]; n > 0 {
			l, ok := rep.GlassToPlayer[k]
			if !ok {
				fmt.Fprintf(w, "%s players: %d (glass-to-player latency not measured: the stream is not dated)\n", k, n)
				continue
			}
			fmt.Fprintf(w, "%s players: %d; glass-to-player latency p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n", k, n, l.P50, l.P90, l.P99)
		}
	}
	fmt.Fprintf(w, "errors: %d%s\n", rep.ErrorCount, formatCounts(rep.Errors))
	if rep.HintsNotProduced > 0 {
		fmt.Fprintf(w, "preload hints whose part was not produced (404, not errors): %d\n", rep.HintsNotProduced)
	}
	if rep.Seconds > 0 {
		fmt.Fprintf(w, "load generator CPU: %.1f s (%.2f cores, %.0f µs per request)\n", rep.GeneratorCPU, rep.GeneratorCPU/rep.Seconds, rep.GeneratorCPUPerRequest)
	}
	if len(rep.Hosts) > 0 {
		fmt.Fprintf(w, "player sessions by host:%s\n", formatCounts(rep.Hosts))
	}
	if b := rep.Broadcast; b != nil {
		fmt.Fprintf(w, "broadcasters: %d, %d RTMP sessions, %d failed\n", b.Broadcasters, b.Sessions, b.Failures)
	}
	if u := rep.Upstream; u != nil {
		fmt.Fprintf(w, "upstream (%s): %.0f segments packaged; PoP fetches from the origin: %.0f segments (%.2f per segment), %.0f playlists, %.0f MPDs, %.0f init; %.0f segments from peers; origin answered %.0f segment requests (%.2f per segment)\n",
			strings.Join(u.Endpoints, ","), u.Segments, u.PoPFetches["segment"], u.PoPFetchesPerSegment,
			u.PoPFetches["playlist"], u.PoPFetches["manifest"], u.PoPFetches["init"], u.PeerFetches,
			u.OriginRequests["segment"], u.OriginRequestsPerSegment)
		if u.Parts > 0 {
			fmt.Fprintf(w, "  LL-HLS: %.0f parts listed; PoP fetches from the origin per part: %.2f playlists, %.2f in all\n",
				u.Parts, u.PoPPlaylistFetchesPerPart, u.PoPFetchesPerPart)
		}
		for _, c := range slices.Sorted(maps.Keys(u.WaiterRelease)) {
			l := u.WaiterRelease[c]
			fmt.Fprintf(w, "  PoP held requests, %s: %d released; arrival to answer p50 %.1f ms, p99 %.1f ms, max <= %.0f ms\n", c, l.Count, l.P50, l.P99, l.Max)
		}
		for _, e := range u.Errors {
			fmt.Fprintf(w, "  metrics error: %s\n", e)
		}
	}
	fmt.Fprintln(w)
	p("class\trequests\tMB\tp50 ms\tp90 ms\tp99 ms\tmax ms\t\n")
	for _, c := range []string{"playlist", "init", "segment", "part"} {
		s := rep.Classes[c]
		if c == "part" && s.Requests == 0 {
			continue
		}
		p("%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", c, s.Requests, float64(s.Bytes)/1e6, s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max)
	}
	p("\t\t\t\t\t\t\t\n")
	if step <= 0 {
		step = max(1, (len(rep.Series)+29)/30)
	}
	p("t s\tviewers\treq/s\tGbps\tpl p99 ms\tseg p50 ms\tseg p99 ms\terrors\tstalls\tstall rate 1m\t\n")
	for i := 0; i < len(rep.Series); i += step {
		s := rep.Series[i]
		p("%d\t%d\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.4f\t\n", s.T, s.Viewers, s.Requests, s.Gbps,
			s.Playlist.Latency.P99, s.Segment.Latency.P50, s.Segment.Latency.P99, s.Errors, s.Stalls, s.StallRate1m)
	}
	return tw.Flush()
}

// formatCounts renders counts as " key N, key N" in key order.
func formatCounts[V int | int64](m map[string]V) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %d", k, m[k])
	}
	return b.String()
}

// progress writes the live progress line.
type progress struct {
	lastReqs, lastBytes int64
	lastAt              time.Duration
}

// line writes one progress line for the second ending at elapsed.
func (pr *progress) line(w io.Writer, r *run, elapsed time.Duration, viewers int) {
	reqs, bytes := r.rec.totalReqs.Load(), r.rec.totalBytes.Load()
	secs := (elapsed - pr.lastAt).Seconds()
	if secs <= 0 {
		secs = 1
	}
	var h histSnapshot
	if elapsed >= time.Second {
		r.rec.at(elapsed - time.Second).latency[classSegment].addTo(&h)
	}
	fmt.Fprintf(w, "t=%4ds viewers=%d req/s=%.0f Gbps=%.3f seg_p99=%.0fms stalls=%d errors=%d\n",
		int(elapsed/time.Second), viewers, float64(reqs-pr.lastReqs)/secs, float64(bytes-pr.lastBytes)*8/1e9/secs,
		ms(h.quantile(0.99)), r.rec.totalStalls.Load(), r.rec.totalErrors.Load()+r.publishErrors.Load())
	pr.lastReqs, pr.lastBytes, pr.lastAt = reqs, bytes, elapsed
}

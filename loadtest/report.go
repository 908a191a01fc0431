package loadtest

import (
	"encoding/json"
	"io"
	"maps"
	"slices"
	"time"
)

// qoeWindow is the span of the one-minute figures, as web/qoe.go keeps them.
const qoeWindow = time.Minute

// Report is what a run saw, from the players' side and, with Metrics, the
// servers'. Times are from the moment players started.
type Report struct {
	Start       time.Time `json:"start"`
	Seconds     float64   `json:"seconds"`      // how long players ran
	PeakViewers int       `json:"peak_viewers"` // most players at once
	Players     int       `json:"players"`      // players started
	Streams     []string  `json:"streams"`
	Targets     []string  `json:"targets"`
	// Hosts counts player sessions by the host their entry manifest was
	// finally served from (after redirects): how a load balancer spread
	// them.
	Hosts map[string]int `json:"hosts"`

	// Classes are per object class: "playlist" (multivariant and media
	// playlists, MPDs), "init", "segment", and "part": what low-latency
	// players ask for before it is complete, held by the servers and
	// sent as it is produced (LL-HLS parts, low-latency DASH segments
	// read chunk by chunk). Latency is from the request to the body's
	// last byte.
	Classes map[string]ClassStats `json:"classes"`
	// FirstSegment is from a player's start to its first segment fully
	// read (playback starts then).
	FirstSegment Latency `json:"first_segment"`
	// NeverStarted counts players that got no segment at all.
	NeverStarted int `json:"never_started"`

	// Stalls counts empty-buffer spells of StallThreshold or more.
	Stalls int64 `json:"stalls"`
	// StalledPlayers counts players with at least one stall; StallRate is
	// their share of the players that started playing.
	StalledPlayers int     `json:"stalled_players"`
	StallRate      float64 `json:"stall_rate"`
	// StallsPerViewerMinute is Stalls per minute of playback.
	StallsPerViewerMinute float64 `json:"stalls_per_viewer_minute"`
	// MaxStallRate1m is the highest one-minute user stall rate of the
	// series.
	MaxStallRate1m float64 `json:"max_stall_rate_1m"`
	// RebufferRatio is the time buffers were empty after playback started
	// over the time since playback started, summed over players;
	// Rebuffers counts the empty spells, of any length.
	RebufferRatio float64 `json:"rebuffer_ratio"`
	Rebuffers     int     `json:"rebuffers"`

	// PlayersByKind counts players by what they play: "hls", "ll-hls"
	// (LL-HLS, as hls.js in lowLatencyMode), "dash", "ll-dash"
	// (low-latency DASH, as dash.js in low-latency mode).
	PlayersByKind map[string]int `json:"players_by_kind"`
	// GlassToPlayer is the glass-to-player latency by kind of player:
	// from a frame reaching ingest to its being on the player's screen,
	// sampled whenever media arrives, as the time it arrived less the
	// wall-clock time its end reached ingest (EXT-X-PROGRAM-DATE-TIME;
	// ProducerReferenceTime for DASH) plus what the player then had
	// buffered. Kinds without a dated stream are left out.
	GlassToPlayer map[string]Latency `json:"glass_to_player"`

	// CrowdAt is when the crowd began, in seconds from the start (see
	// Schedule.CrowdAt); BeforeCrowd are the players that started before
	// it, WithCrowd those that started with it or later. Absent without
	// a crowd.
	CrowdAt     *float64 `json:"crowd_at_s,omitempty"`
	BeforeCrowd *Cohort  `json:"before_crowd,omitempty"`
	WithCrowd   *Cohort  `json:"with_crowd,omitempty"`

	// HintsNotProduced counts the LL-HLS preload hints whose part was
	// never produced, answered 404: the segment ended (at a keyframe)
	// before the part hinted. Not errors: players move on.
	HintsNotProduced int64 `json:"hints_not_produced"`

	// Errors counts failed requests by kind: "timeout", "connect",
	// "parse", "aborted", "publish", "other", or the HTTP status ("404").
	Errors     map[string]int64 `json:"errors"`
	ErrorCount int64            `json:"error_count"`

	// GeneratorCPU is the CPU time, in seconds, this process (players,
	// broadcasters) used while players ran: over Seconds, the share of a
	// core the load generator itself took.
	GeneratorCPU float64 `json:"generator_cpu_s"`
	// GeneratorCPUPerRequest is GeneratorCPU over the requests players
	// made, in microseconds.
	GeneratorCPUPerRequest float64 `json:"generator_cpu_us_per_request"`

	Broadcast *Broadcast `json:"broadcast,omitempty"`
	Upstream  *Upstream  `json:"upstream,omitempty"`

	// Series has one entry per second of the run.
	Series []Second `json:"series"`
}

// Cohort are the stall figures of some of the players.
type Cohort struct {
	Players        int     `json:"players"`
	Stalls         int     `json:"stalls"`
	StalledPlayers int     `json:"stalled_players"`
	StallRate      float64 `json:"stall_rate"` // over those of them that started playing
}

// ClassStats are the figures of one object class.
type ClassStats struct {
	Requests int64   `json:"requests"`
	Bytes    int64   `json:"bytes"`
	Latency  Latency `json:"latency"`
}

// Latency are percentiles in milliseconds, within a histogram bucket (about
// 9%).
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Second is one second of the run.
type Second struct {
	T        int     `json:"t"`
	Viewers  int     `json:"viewers"`
	Requests int64   `json:"requests"`
	Bytes    int64   `json:"bytes"`
	Gbps     float64 `json:"gbps"`
	// Playlist and Segment are the requests of those classes that ended
	// in this second.
	Playlist ClassStats `json:"playlist"`
	Segment  ClassStats `json:"segment"`
	Errors   int64      `json:"errors"`
	Stalls   int64      `json:"stalls"`
	Starts   int64      `json:"starts"` // players whose first segment came
	// The one-minute figures at the end of this second, as web/qoe.go
	// defines them: users are players that ran in the last minute,
	// stalled users those among them with a stall in it.
	Stalls1m       int     `json:"stalls_1m"`
	Users1m        int     `json:"users_1m"`
	StalledUsers1m int     `json:"stalled_users_1m"`
	StallRate1m    float64 `json:"stall_rate_1m"`
}

// Broadcast is what the broadcasters did.
type Broadcast struct {
	Broadcasters int   `json:"broadcasters"`
	Sessions     int64 `json:"sessions"` // RTMP sessions started
	Failures     int64 `json:"failures"` // sessions that failed
}

// Upstream is what the servers' /metrics counted over the run (after
// minus before), summed over the endpoints read.
type Upstream struct {
	Endpoints []string `json:"endpoints"`
	Errors    []string `json:"errors,omitempty"`
	// Segments counts media segments packaged (live_origin_segments_total,
	// every rendition).
	Segments float64 `json:"segments"`
	// PoPFetches counts PoP fetches from the origin by class
	// (live_pop_upstream_fetches_total{target="origin"}); PeerFetches
	// those of segments from other nodes of the PoP.
	PoPFetches  map[string]float64 `json:"pop_origin_fetches"`
	PeerFetches float64            `json:"pop_peer_segment_fetches"`
	// OriginRequests counts the origin's answered requests by class
	// (live_origin_requests_total{code="200"}).
	OriginRequests map[string]float64 `json:"origin_requests"`
	// PoPFetchesPerSegment is PoP segment fetches from the origin per
	// segment packaged: 1 when the PoP asks each segment of each
	// rendition once. OriginRequestsPerSegment counts the origin's side
	// (what any cache in front of it asked): the figure for nginx.
	PoPFetchesPerSegment     float64 `json:"pop_fetches_per_segment"`
	OriginRequestsPerSegment float64 `json:"origin_requests_per_segment"`

	// Parts counts the LL-HLS parts produced while players ran, as the
	// playlists players read listed them (every rendition watched);
	// PoPPlaylistFetchesPerPart is the PoP's playlist fetches from the
	// origin (live_pop_upstream_fetches_total{class="playlist"}) per
	// part: 1 when it asks each blocking reload once, whatever the
	// players; PoPFetchesPerPart counts every class (playlists, MPDs,
	// init and media segments, which parts are answered from).
	Parts                     float64 `json:"parts,omitempty"`
	PoPPlaylistFetchesPerPart float64 `json:"pop_playlist_fetches_per_part,omitempty"`
	PoPFetchesPerPart         float64 `json:"pop_fetches_per_part,omitempty"`
	// WaiterRelease is, by object class, the PoP's time from the arrival
	// of what held requests waited for (the last byte of a part, of a
	// playlist answering a blocking reload, of a segment being produced)
	// to each waiter's answer being written
	// (live_pop_waiter_release_seconds), interpolated within its buckets
	// as Prometheus's histogram_quantile does; max is the upper bound of
	// the highest bucket used.
	WaiterRelease map[string]Latency `json:"pop_waiter_release,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rep)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func latencyOf(s *histSnapshot) Latency {
	return Latency{Count: s.total(), P50: ms(s.quantile(0.5)), P90: ms(s.quantile(0.9)), P99: ms(s.quantile(0.99)), Max: ms(s.max())}
}

// report builds the report of a run that went from start to end.
func (r *run) report(start, end time.Time, before, after *scrape) *Report {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rep := &Report{
		Start:   start,
		Seconds: end.Sub(start).Seconds(),
		Players: len(rec.spans),
		Streams: r.streams(),
		Targets: r.cfg.Targets,
		Hosts:   maps.Clone(rec.hosts),
		Classes: map[string]ClassStats{},
		Errors:  map[string]int64{},
	}
	// The series has the whole seconds; the totals count everything.
	seconds := min(max(int(end.Sub(start)/time.Second), 1), len(rec.buckets))
	var totals [numClasses]histSnapshot
	var reqs, bytes [numClasses]int64
	for i := range rec.buckets {
		b := &rec.buckets[i]
		sec := Second{T: i, Viewers: int(b.viewers.Load()), Errors: b.errors.Load(), Stalls: b.stalls.Load(), Starts: b.starts.Load()}
		rep.PeakViewers = max(rep.PeakViewers, sec.Viewers)
		for c := range numClasses {
			var h histSnapshot
			b.latency[c].addTo(&h)
			n, nb := b.requests[c].Load(), b.bytes[c].Load()
			reqs[c] += n
			bytes[c] += nb
			for k := range h {
				totals[c][k] += h[k]
			}
			sec.Requests += n
			sec.Bytes += nb
			cs := ClassStats{Requests: n, Bytes: nb, Latency: latencyOf(&h)}
			switch c {
			case classPlaylist:
				sec.Playlist = cs
			case classSegment:
				sec.Segment = cs
			}
		}
		if i >= seconds {
			continue
		}
		sec.Gbps = float64(sec.Bytes) * 8 / 1e9
		at := time.Duration(i+1) * time.Second
		sec.Users1m, sec.StalledUsers1m, sec.Stalls1m = oneMinute(rec.spans, at)
		if sec.Users1m > 0 {
			sec.StallRate1m = float64(sec.StalledUsers1m) / float64(sec.Users1m)
		}
		rep.MaxStallRate1m = max(rep.MaxStallRate1m, sec.StallRate1m)
		rep.Series = append(rep.Series, sec)
	}
	for c := range numClasses {
		rep.Classes[c.String()] = ClassStats{Requests: reqs[c], Bytes: bytes[c], Latency: latencyOf(&totals[c])}
	}
	var fs histSnapshot
	rec.firstSegment.addTo(&fs)
	rep.FirstSegment = latencyOf(&fs)
	rep.NeverStarted = rec.neverPlay
	rep.Rebuffers = rec.spells
	rep.Stalls = rec.totalStalls.Load()
	rep.HintsNotProduced = rec.hintsGone.Load()
	for _, s := range rec.spans {
		if len(s.stalls) > 0 {
			rep.StalledPlayers++
		}
	}
	if played := len(rec.spans) - rec.neverPlay; played > 0 {
		rep.StallRate = float64(rep.StalledPlayers) / float64(played)
	}
	if rec.watched > 0 {
		rep.StallsPerViewerMinute = float64(rep.Stalls) / rec.watched.Minutes()
		rep.RebufferRatio = rec.rebuffer.Seconds() / rec.watched.Seconds()
	}
	for k := range numErrKinds {
		if k == errStatus {
			continue
		}
		if n := rec.errKinds[k].Load(); n > 0 {
			rep.Errors[k.String()] = n
		}
	}
	for st := range rec.statuses {
		if n := rec.statuses[st].Load(); n > 0 {
			rep.Errors[kindName(errStatus, st)] = n
		}
	}
	if n := r.publishErrors.Load(); n > 0 {
		rep.Errors[errPublish.String()] = n
	}
	for _, n := range rep.Errors {
		rep.ErrorCount += n
	}
	if r.cfg.Broadcasters > 0 {
		rep.Broadcast = &Broadcast{Broadcasters: r.cfg.Broadcasters, Sessions: r.publishes.Load(), Failures: r.publishErrors.Load()}
	}
	rep.PlayersByKind = map[string]int{}
	for _, sp := range rec.spans {
		rep.PlayersByKind[sp.kind.String()]++
	}
	rep.GlassToPlayer = map[string]Latency{}
	for k := range numKinds {
		var h histSnapshot
		rec.glass[k].addTo(&h)
		if h.total() > 0 {
			rep.GlassToPlayer[k.String()] = latencyOf(&h)
		}
	}
	if at, ok := r.cfg.Schedule.CrowdAt(); ok {
		secs := at.Seconds()
		rep.CrowdAt = &secs
		rep.BeforeCrowd, rep.WithCrowd = &Cohort{}, &Cohort{}
		var played [2]int
		for _, sp := range rec.spans {
			c, i := rep.BeforeCrowd, 0
			if sp.start >= at {
				c, i = rep.WithCrowd, 1
			}
			c.Players++
			c.Stalls += len(sp.stalls)
			if len(sp.stalls) > 0 {
				c.StalledPlayers++
			}
			if sp.played {
				played[i]++
			}
		}
		for i, c := range []*Cohort{rep.BeforeCrowd, rep.WithCrowd} {
			if played[i] > 0 {
				c.StallRate = float64(c.StalledPlayers) / float64(played[i])
			}
		}
	}
	if before != nil && after != nil {
		rep.Upstream = upstream(before, after)
		if u := rep.Upstream; rec.parts > 0 {
			u.Parts = float64(rec.parts)
			u.PoPPlaylistFetchesPerPart = u.PoPFetches["playlist"] / u.Parts
			var all float64
			for _, n := range u.PoPFetches {
				all += n
			}
			u.PoPFetchesPerPart = all / u.Parts
		}
	}
	return rep
}

// oneMinute returns, at t, the players that ran in the minute before t,
// those of them that stalled in it, and the stalls in it: web/qoe.go's
// users, stalled users and the stalls they reported.
func oneMinute(spans []viewerSpan, t time.Duration) (users, stalled, stalls int) {
	from := t - qoeWindow
	for _, s := range spans {
		if s.start > t || s.end <= from {
			continue
		}
		users++
		n := 0
		for _, st := range s.stalls {
			if st > from && st <= t {
				n++
			}
		}
		if n > 0 {
			stalled++
			stalls += n
		}
	}
	return users, stalled, stalls
}

// upstream computes what the servers counted between two scrapes.
func upstream(before, after *scrape) *Upstream {
	// Only endpoints read both times count.
	var both []string
	for e := range after.samples {
		if _, ok := before.samples[e]; ok {
			both = append(both, e)
		}
	}
	slices.Sort(both)
	delta := func(name string, labels map[string]string) float64 {
		var d float64
		for _, e := range both {
			d += after.sum(e, name, labels) - before.sum(e, name, labels)
		}
		return d
	}
	u := &Upstream{
		Endpoints:      both,
		Errors:         slices.Concat(before.errors, after.errors),
		Segments:       delta("live_origin_segments_total", nil),
		PoPFetches:     map[string]float64{},
		OriginRequests: map[string]float64{},
		PeerFetches:    delta("live_pop_upstream_fetches_total", map[string]string{"class": "segment", "target": "peer"}),
	}
	for _, c := range []string{"playlist", "manifest", "init", "segment"} {
		u.PoPFetches[c] = delta("live_pop_upstream_fetches_total", map[string]string{"class": c, "target": "origin"})
		u.OriginRequests[c] = delta("live_origin_requests_total", map[string]string{"class": c, "code": "200"})
	}
	if u.Segments > 0 {
		u.PoPFetchesPerSegment = u.PoPFetches["segment"] / u.Segments
		u.OriginRequestsPerSegment = u.OriginRequests["segment"] / u.Segments
	}
	for _, c := range []string{"part", "playlist", "segment"} {
		var h bucketCounts
		for _, e := range both {
			h.add(after.samples[e], before.samples[e], "live_pop_waiter_release_seconds", map[string]string{"class": c})
		}
		if l, ok := h.latency(); ok {
			if u.WaiterRelease == nil {
				u.WaiterRelease = map[string]Latency{}
			}
			u.WaiterRelease[c] = l
		}
	}
	return u
}

// Package gslb is the global load balancer in front of the PoPs: it sends
// each viewer to the nearest PoP, by measured latency from the viewer's
// network, whose predicted load leaves room for one more, to the next
// nearest otherwise, and to an overflow CDN when every PoP is full.
//
// PoPs report their load (viewers, egress) every few seconds, and a
// report's figures are already old when it arrives, while a flash crowd
// arrives fast. So the balancer predicts each PoP's load for the moment
// the report arrives, the report's age (Horizon) past its figures, in two
// ways, and takes the larger: the measured series extrapolated from its
// last three samples (Cubic, Linear, or Last for none), and the last
// measurement plus the viewers the balancer itself sent there within
// Horizon before the report, which the report cannot show yet. To that it
// adds the viewers sent since the report. The second way is exact for
// viewers this balancer sends; the first covers load it does not see
// coming: viewers leaving, viewers arriving by other paths.
//
// Balancer holds the map and the PoPs' loads and decides; Server puts it
// on HTTP (302 redirects for players, the reports, the map); Reporter is
// the PoP's side of the reports.
package gslb

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Balancer.
type Config struct {
	// Map is the latency map to start with; SetMap replaces it. Nil means
	// an empty map: every viewer overflows until a map is set.
	Map *Map
	// Predictor forecasts each PoP's load. Nil means Cubic{}.
	Predictor Predictor
	// Interval is how often PoPs report. Zero means 3 s.
	Interval time.Duration
	// Horizon is the age of a report's figures when it arrives: its
	// PoP's load is predicted that far past them, and the viewers sent
	// to the PoP within Horizon before the report are counted on top of
	// its figures. Zero means 3 s.
	Horizon time.Duration
	// IgnoreInFlight forgets the viewers sent to a PoP once its next
	// report arrives, as if reports were never late: the plain scheme,
	// which a flash crowd overruns by the viewers sent while a report
	// travels unless the prediction covers them (see the simulation in
	// the tests). For reports that are current when they arrive.
	IgnoreInFlight bool
	// Timeout is how long a PoP is sent viewers after its last report;
	// past it the PoP is removed. Zero means 3 × Interval. A PoP whose
	// report session ends (see Server) is removed at once.
	Timeout time.Duration
	// OverflowURL is the base URL viewers are sent to when no PoP can
	// take them: a CDN serving the origin's /live/ layout. Empty means
	// none: those viewers get no route.
	OverflowURL string
	// Utilization is the fraction of each PoP's capacity the balancer
	// fills, keeping the rest against errors. Zero means 1.
	Utilization float64
	// ViewerBPS is the egress one more viewer is assumed to add, in bits/s,
	// against a PoP's bits/s capacity, until the PoP reports viewers and
	// egress to measure it. Zero means 3 Mb/s.
	ViewerBPS float64
	// Now tells the time; simulations pass a virtual clock. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives PoPs joining, leaving and draining. Nil means
	// discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

// Balancer assigns viewers to PoPs. It is safe for concurrent use.
type Balancer struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	m       atomic.Pointer[Map]

	mu sync.Mutex
	// pops are the PoPs that reported within Timeout, by name; guarded
	// by mu.
	pops map[string]*popState
}

// popState is what the balancer knows of one PoP.
type popState struct {
	report  Report
	last    time.Time // when the last report arrived
	session uint64    // the report session it arrived on; 0 for none
	// viewers and bps are the last three figures, oldest first.
	viewers, bps []Sample
	// predViewers and predBPS are the measured series extrapolated by
	// Horizon.
	predViewers, predBPS float64
	// inFlight counts the viewers sent here within Horizon before the
	// last report; assigned those sent since.
	inFlight, assigned int64
	// sent counts the viewers sent here, by time, as long as a future
	// report may need them for inFlight.
	sent []sentBucket
	// past holds the viewer predictions not yet compared with a report,
	// for the prediction error metric.
	past    []Sample
	metrics *popMetrics
}

// New validates cfg and returns a Balancer.
func New(cfg Config) (*Balancer, error) {
	if cfg.Predictor == nil {
		cfg.Predictor = Cubic{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.Horizon < 0 {
		return nil, fmt.Errorf("gslb: negative horizon %v", cfg.Horizon)
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = 3 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * cfg.Interval
	}
	if cfg.OverflowURL != "" {
		if err := checkBaseURL(cfg.OverflowURL); err != nil {
			return nil, fmt.Errorf("gslb: overflow URL: %w", err)
		}
		cfg.OverflowURL = strings.TrimRight(cfg.OverflowURL, "/")
	}
	switch {
	case cfg.Utilization == 0:
		cfg.Utilization = 1
	case cfg.Utilization < 0 || cfg.Utilization > 1:
		return nil, fmt.Errorf("gslb: utilization %v is not in (0, 1]", cfg.Utilization)
	}
	if cfg.ViewerBPS <= 0 {
		cfg.ViewerBPS = 3e6
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{cfg: cfg, log: cfg.Logger, pops: make(map[string]*popState)}
	m, err := newMetrics(cfg.Registerer, b.livePoPs)
	if err != nil {
		return nil, fmt.Errorf("gslb: %w", err)
	}
	b.metrics = m
	b.m.Store(cfg.Map)
	return b, nil
}

// SetMap replaces the latency map; routes use the new one at once.
func (b *Balancer) SetMap(m *Map) {
	b.m.Store(m)
	b.log.Info("map replaced", "networks", m.Networks())
}

// Map returns the latency map in use.
func (b *Balancer) Map() *Map { return b.m.Load() }

// Report applies a PoP's report: its figures join the PoP's series, its
// load is predicted afresh, and of the viewers sent there since its last
// report, those sent within Horizon before this one are in flight, the
// others counted by the report.
func (b *Balancer) Report(r Report) error {
	return b.report(r, 0)
}

func (b *Balancer) report(r Report, session uint64) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r.URL = strings.TrimRight(r.URL, "/")
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	st := b.pops[r.Name]
	if st == nil {
		st = &popState{metrics: b.metrics.pop(r.Name)}
		b.pops[r.Name] = st
		b.log.Info("pop joined", "pop", r.Name, "url", r.URL)
	}
	if r.Draining && !st.report.Draining {
		b.log.Info("pop draining", "pop", r.Name)
	}
	st.report, st.last, st.session = r, now, session
	st.viewers = pushSample(st.viewers, Sample{At: now, Value: float64(r.Viewers)})
	st.bps = pushSample(st.bps, Sample{At: now, Value: r.EgressBPS})
	st.predViewers = b.cfg.Predictor.Predict(st.viewers, b.cfg.Horizon)
	st.predBPS = b.cfg.Predictor.Predict(st.bps, b.cfg.Horizon)
	st.assigned = 0
	st.inFlight = st.sentSince(now.Add(-b.cfg.Horizon))
	if b.cfg.IgnoreInFlight {
		st.inFlight = 0
	}
	b.observeLocked(st, now)
	return nil
}

// sentBucket counts the viewers sent to a PoP from at to at+sentBucketWidth.
type sentBucket struct {
	at time.Time
	n  int64
}

// sentBucketWidth is the resolution of the in-flight count; a bucket
// that straddles the Horizon boundary counts whole, erring high.
const sentBucketWidth = 100 * time.Millisecond

// send records one more viewer sent at now.
func (st *popState) send(now time.Time) {
	st.assigned++
	if n := len(st.sent); n > 0 && now.Before(st.sent[n-1].at.Add(sentBucketWidth)) {
		st.sent[n-1].n++
		return
	}
	st.sent = append(st.sent, sentBucket{at: now, n: 1})
}

// sentSince drops the buckets that ended before from and returns the
// viewers sent in the others.
func (st *popState) sentSince(from time.Time) int64 {
	i := 0
	for i < len(st.sent) && !st.sent[i].at.Add(sentBucketWidth).After(from) {
		i++
	}
	st.sent = append(st.sent[:0], st.sent[i:]...)
	var n int64
	for _, bk := range st.sent {
		n += bk.n
	}
	return n
}

// pushSample appends s to the last three samples; a sample at the same
// instant as the last replaces it.
func pushSample(ss []Sample, s Sample) []Sample {
	if n := len(ss); n > 0 && !s.At.After(ss[n-1].At) {
		ss[n-1] = s
		return ss
	}
	if len(ss) == 3 {
		ss = append(ss[:0], ss[1:]...)
	}
	return append(ss, s)
}

// observeLocked updates st's metrics after a report: its figures, and how
// far the prediction made for about this instant was off.
func (b *Balancer) observeLocked(st *popState, now time.Time) {
	r := st.report
	pm := st.metrics
	pm.viewers.Set(float64(r.Viewers))
	pm.predViewers.Set(st.predViewers)
	pm.egress.Set(r.EgressBPS)
	pm.predEgress.Set(st.predBPS)
	pm.capViewers.Set(float64(r.CapacityViewers))
	pm.capBPS.Set(r.CapacityBPS)
	pm.draining.Set(boolFloat(r.Draining))
	// Compare the report with the prediction whose target is nearest,
	// within half an interval.
	best, tolerance := -1, b.cfg.Interval/2
	for i, p := range st.past {
		if d := absDuration(p.At.Sub(now)); d <= tolerance {
			best, tolerance = i, d
		}
	}
	if best >= 0 {
		pm.predError.Set(float64(r.Viewers) - st.past[best].Value)
	}
	st.past = slices.DeleteFunc(st.past, func(p Sample) bool { return !p.At.After(now) })
	if len(st.past) < 8 {
		st.past = append(st.past, Sample{At: now.Add(b.cfg.Horizon), Value: st.predViewers})
	}
}

// expireLocked removes the PoPs whose last report is older than Timeout.
func (b *Balancer) expireLocked(now time.Time) {
	for name, st := range b.pops {
		if now.Sub(st.last) > b.cfg.Timeout {
			b.removeLocked(name, "no report for "+b.cfg.Timeout.String())
		}
	}
}

func (b *Balancer) removeLocked(name, why string) {
	delete(b.pops, name)
	b.metrics.forget(name)
	b.log.Warn("pop removed", "pop", name, "reason", why)
}

// endSession removes the PoPs whose last report came on session id: the
// PoP closed it or died; why says which.
func (b *Balancer) endSession(id uint64, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, st := range b.pops {
		if st.session == id {
			b.removeLocked(name, why)
		}
	}
}

// PoPStatus is one PoP as the balancer sees it.
type PoPStatus struct {
	Report
	// LastReport is when the last report arrived.
	LastReport time.Time `json:"last_report"`
	// PredictedViewers and PredictedBPS are the measured series
	// extrapolated by Horizon past the last report's figures.
	PredictedViewers float64 `json:"predicted_viewers"`
	PredictedBPS     float64 `json:"predicted_bps"`
	// InFlightViewers counts the viewers sent here within Horizon before
	// the last report; AssignedViewers those sent since.
	InFlightViewers int64 `json:"in_flight_viewers"`
	AssignedViewers int64 `json:"assigned_viewers"`
}

// PoPs returns the PoPs that reported within Timeout, by name.
func (b *Balancer) PoPs() []PoPStatus {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	out := make([]PoPStatus, 0, len(b.pops))
	for _, st := range b.pops {
		out = append(out, PoPStatus{
			Report:           st.report,
			LastReport:       st.last,
			PredictedViewers: st.predViewers,
			PredictedBPS:     st.predBPS,
			InFlightViewers:  st.inFlight,
			AssignedViewers:  st.assigned,
		})
	}
	slices.SortFunc(out, func(a, b PoPStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// livePoPs counts the PoPs that may be sent viewers, for the metrics.
func (b *Balancer) livePoPs() float64 {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, st := range b.pops {
		if now.Sub(st.last) <= b.cfg.Timeout && !st.report.Draining {
			n++
		}
	}
	return float64(n)
}

func boolFloat(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

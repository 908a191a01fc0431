package gslb

import (
	"net/netip"
)

// Reasons for a route.
const (
	// ReasonNearest: the first PoP of the client's network took it.
	ReasonNearest = "nearest"
	// ReasonSpillover: nearer PoPs were full, draining or silent.
	ReasonSpillover = "spillover"
	// ReasonOverflow: no PoP could take the client; it goes to the
	// overflow URL.
	ReasonOverflow = "overflow"
	// ReasonUnavailable: no PoP could take the client and there is no
	// overflow URL.
	ReasonUnavailable = "unavailable"
)

// Route is where a client is sent, and why.
type Route struct {
	// PoP is the chosen PoP; empty for overflow and unavailable.
	PoP string `json:"pop,omitempty"`
	// URL is the base URL to send the client to: the PoP's, or the
	// overflow URL; empty when unavailable.
	URL    string `json:"url,omitempty"`
	Reason string `json:"reason"`
	// Network is the map's network holding the client, or "default".
	Network string `json:"network"`
	// LatencyMS is the map's latency from Network to PoP.
	LatencyMS float64 `json:"latency_ms"`
	// The chosen PoP's load when it was chosen (see PoPStatus), this
	// viewer not included, and its capacity.
	Viewers          int64   `json:"viewers"`
	PredictedViewers float64 `json:"predicted_viewers"`
	PredictedBPS     float64 `json:"predicted_bps"`
	InFlightViewers  int64   `json:"in_flight_viewers"`
	AssignedViewers  int64   `json:"assigned_viewers"`
	CapacityViewers  int64   `json:"capacity_viewers"`
	CapacityBPS      float64 `json:"capacity_bps"`
	// Skipped are the nearer PoPs passed over, and why; only Peek fills
	// it.
	Skipped []Skip `json:"skipped,omitempty"`
}

// Skip is a PoP a route passed over.
type Skip struct {
	PoP string `json:"pop"`
	// Why is "full", "overloaded", "draining" or "not reporting".
	Why string `json:"why"`
}

// Assign chooses a route for a client at addr and counts it against the
// chosen PoP until the PoP's next report.
func (b *Balancer) Assign(addr netip.Addr) Route {
	return b.route(addr, true)
}

// Peek returns the route Assign would choose now, with the PoPs it would
// pass over, without counting it.
func (b *Balancer) Peek(addr netip.Addr) Route {
	return b.route(addr, false)
}

// route walks the client's PoPs by increasing latency and takes the first
// that reports, is not draining, and has room for one more viewer within
// Utilization of its capacity in viewers and in bits/s. Its load is
//
//	max(prediction, last measurement + in-flight) + assigned since the report
//
// (see the package comment): the prediction is used when it is above what
// the balancer knows, never below it, for a fall that is predicted but
// does not come would overload the PoP, while a fall that comes shows in
// the next report.
func (b *Balancer) route(addr netip.Addr, commit bool) Route {
	network, pops := b.m.Load().Lookup(addr)
	rt := Route{Network: "default"}
	if network.IsValid() {
		rt.Network = network.String()
	}
	now := b.cfg.Now()
	b.mu.Lock()
	for i, l := range pops {
		st := b.pops[l.PoP]
		why := ""
		switch {
		case st == nil || now.Sub(st.last) > b.cfg.Timeout:
			why = "not reporting"
		case st.report.Draining:
			why = "draining"
		case st.report.Overloaded:
			why = "overloaded"
		case !b.hasRoomLocked(st):
			why = "full"
		}
		if why != "" {
			if !commit {
				rt.Skipped = append(rt.Skipped, Skip{PoP: l.PoP, Why: why})
			}
			continue
		}
		rt.PoP, rt.URL, rt.LatencyMS = l.PoP, st.report.URL, l.MS
		rt.Reason = ReasonNearest
		if i > 0 {
			rt.Reason = ReasonSpillover
		}
		rt.Viewers, rt.PredictedViewers, rt.PredictedBPS = st.report.Viewers, st.predViewers, st.predBPS
		rt.InFlightViewers, rt.AssignedViewers = st.inFlight, st.assigned
		rt.CapacityViewers, rt.CapacityBPS = st.report.CapacityViewers, st.report.CapacityBPS
		if commit {
			st.send(now)
			st.metrics.assigned[rt.Reason].Inc()
		}
		b.mu.Unlock()
		return rt
	}
	b.mu.Unlock()
	rt.Reason, rt.URL = ReasonUnavailable, ""
	if b.cfg.OverflowURL != "" {
		rt.Reason, rt.URL = ReasonOverflow, b.cfg.OverflowURL
	}
	switch {
	case !commit:
	case rt.Reason == ReasonOverflow:
		b.metrics.overflow.Inc()
	default:
		b.metrics.unavailable.Inc()
	}
	return rt
}

// hasRoomLocked reports whether st can take one more viewer.
func (b *Balancer) hasRoomLocked(st *popState) bool {
	r := st.report
	known := float64(r.Viewers + st.inFlight)
	next := float64(st.assigned + 1)
	if r.CapacityViewers > 0 && max(st.predViewers, known)+next > b.cfg.Utilization*float64(r.CapacityViewers) {
		return false
	}
	if r.CapacityBPS > 0 {
		perViewer := b.cfg.ViewerBPS
		if r.Viewers > 0 && r.EgressBPS > 0 {
			perViewer = r.EgressBPS / float64(r.Viewers)
		}
		knownBPS := r.EgressBPS + float64(st.inFlight)*perViewer
		if max(st.predBPS, knownBPS)+next*perViewer > b.cfg.Utilization*r.CapacityBPS {
			return false
		}
	}
	return true
}

package pop

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golivestream/live/internal/promreg"
)

// metrics are a PoP node's Prometheus collectors.
type metrics struct {
	requests       *prometheus.CounterVec
	fetches        *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	bytesServed    *prometheus.CounterVec
	evictions      *prometheus.CounterVec
	expired        *prometheus.CounterVec
	held           *prometheus.GaugeVec
	aborted        prometheus.Counter
	prefetches     prometheus.Counter
	// fastRequests and handoffs count the requests the fast path answered
	// and the connections it gave to net/http (Serve, package fastpath).
	fastRequests prometheus.Counter
	handoffs     prometheus.Counter
	// sendfile counts the responses whose body the fast path sent from a
	// bodyFile.
	sendfile prometheus.Counter
	// refused counts the requests answered without asking upstream, by
	// reason (route.go).
	refused map[string]prometheus.Counter
	// failovers counts the fetches that went to a backup origin, by
	// reason (fleet.go).
	failovers map[string]prometheus.Counter
	// denied counts the requests the access rules denied, by reason.
	denied map[string]prometheus.Counter
	// clientGone counts pass-through requests whose client left before
	// the answer.
	clientGone prometheus.Counter
	// keyRequests counts the key requests of encrypted streams, by
	// result (keys.go).
	keyRequests *prometheus.CounterVec

	// release observes, by what was waited for (releasePart,
	// releasePlaylist, releaseSegment), the time from the arrival of the
	// bytes a held request waited for to its answer being written.
	release [numReleases]prometheus.Observer

	// Resolved children of the vectors used on every request, so the hot
	// path does not hash label values.
	served [classSegment + 1][lookupStale + 1]prometheus.Counter
	bytes  [classSegment + 1]prometheus.Counter
}

// What a held request waited for, for live_pop_waiter_release_seconds.
const (
	releasePart = iota
	releasePlaylist
	releaseSegment
	numReleases
)

var releaseNames = [numReleases]string{"part", "playlist", "segment"}

// released observes, for a request that waited for o to arrive, the time
// from the arrival of the last bytes of o so far to now, its answer
// written.
func (m *metrics) released(what int, o *object) {
	if at := o.body.arrived.Load(); at > 0 {
		m.release[what].Observe(time.Since(time.Unix(0, at)).Seconds())
	}
}

// resolve fills the per-request counters.
func (m *metrics) resolve() {
	for c := classOther; c <= classSegment; c++ {
		for l := lookupHit; l <= lookupStale; l++ {
			m.served[c][l] = m.requests.WithLabelValues(c.String(), l.String())
		}
		m.bytes[c] = m.bytesServed.WithLabelValues(c.String())
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_requests_total",
			Help: "Requests answered, by object class and result: hit, coalesced (joined a fill in progress), miss (started a fill), stale, error.",
		}, []string{"class", "result"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_upstream_fetches_total",
			Help: "Upstream fetches started, by object class and target (origin or peer).",
		}, []string{"class", "target"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_upstream_errors_total",
			Help: "Upstream failures: unreachable, or a body cut short, by where (origin, peer, local or proxy cache).",
		}, []string{"where"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_bytes_served_total",
			Help: "Body bytes sent to clients, by object class.",
		}, []string{"class"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_evictions_total",
			Help: "Objects removed from a cache layer to stay within its bytes.",
		}, []string{"layer"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_expired_total",
			Help: "Short-lived objects (playlists, MPDs, 404s) removed from a cache layer once of no more use.",
		}, []string{"layer"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "live_pop_held_requests",
			Help: "Requests waiting for an upstream fetch to answer, by cache layer.",
		}, []string{"layer"}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_aborted_responses_total",
			Help: "Responses cut off because the upstream body failed after the headers were sent.",
		}),
		prefetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_prefetches_total",
			Help: "Segments fetched ahead because a playlist refresh listed them.",
		}),
		fastRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_fast_requests_total",
			Help: "Requests answered by the fast path: plain HTTP/1.1 GET or HEAD of a media path, without net/http.",
		}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_http_handoffs_total",
			Help: "Connections the fast path gave to net/http at their first request it does not answer: another method or path, HTTP/1.0, a request body, a head over 4 KiB.",
		}),
		sendfile: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_sendfile_responses_total",
			Help: "Cached segments the fast path sent with sendfile(2) from a memory file, without copying them from the heap.",
		}),
		keyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "live_pop_key_requests_total",
			Help: "Key requests of encrypted streams (ClearKey licenses, HLS key URIs), passed on to the origin uncached, by result: ok, refused (the origin's 4xx), denied (access rules), limited (the client's key requests over KeyRate: 429), method, bad_request, error (upstream unavailable).",
		}, []string{"result"}),
		clientGone: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "live_pop_client_gone_total",
			Help: "Requests passed through to the origin whose client left before the answer: normal client behaviour, not an upstream failure.",
		}),
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "live_pop_refused_total",
		Help: "Requests the PoP answered itself without asking upstream, by reason: layout (no object of the URL layout, or not in its one spelling: 404), directive (malformed HLS delivery directive: 400), ahead (a segment or _HLS_msn far past the last one a manifest listed: 404 or 400), miss_budget (the client's fetches of objects not known to exist are spent: 429), uri_too_long (414), overload (a new session while the node takes none: 503).",
	}, []string{"reason"})
	failoverVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "live_pop_failovers_total",
		Help: "Fetches that went to a stream's backup origin, by reason: unreachable (the primary refused or broke the connection), status (a 5xx), not_found (a 404: an origin restarted while the directory still names it has none of the stream), slow (no answer within -hedge-after: both asked, the first answer taken), resume (a body broke in the middle and was continued from the backup with a Range request).",
	}, []string{"reason"})
	m.failovers = map[string]prometheus.Counter{}
	for _, r := range []string{"unreachable", "status", "not_found", "slow", "resume"} {
		m.failovers[r] = failoverVec.WithLabelValues(r)
	}
	deniedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "live_pop_access_denied_total",
		Help: "Requests denied by the access rules (tokens, client networks), by reason: no-token (401), invalid, revoked, expired, not-yet-valid, wrong-stream, network, too-many-addresses, address (403), too-many-invalid (429).",
	}, []string{"reason"})
	m.denied = map[string]prometheus.Counter{}
	for _, r := range deniedReasons() {
		m.denied[r] = deniedVec.WithLabelValues(r)
	}
	m.refused = map[string]prometheus.Counter{}
	for _, l := range refusalLabels {
		m.refused[l] = refused.WithLabelValues(l)
	}
	releaseVec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "live_pop_waiter_release_seconds",
		Help:    "Requests that waited for their object to arrive (held LL-HLS parts, blocking playlist reloads and other coalesced playlist requests, segments joined while filling): time from the arrival at the node of the last bytes they waited for to their answer being written, by class (part, playlist, segment).",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1},
	}, []string{"class"})
	for c, name := range releaseNames {
		m.release[c] = releaseVec.WithLabelValues(name)
	}
	m.resolve()
	if err := promreg.Register(reg, releaseVec, m.requests, m.fetches, m.upstreamErrors, m.bytesServed, m.evictions, m.expired, m.held, m.aborted, m.prefetches, m.fastRequests, m.handoffs, m.sendfile, refused, deniedVec, failoverVec, m.clientGone, m.keyRequests); err != nil {
		return nil, err
	}
	return m, nil
}

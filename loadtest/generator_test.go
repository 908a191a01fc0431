package loadtest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/loadtest/testpipeline"
)

// runReport runs a generator of cfg and logs its report table.
func runReport(t *testing.T, cfg Config) *Report {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table, 0); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	return rep
}

// redirector is a load balancer stand-in: /play/{stream}/{file} answers
// 302 to /live/{stream}/{file} on its targets in turn.
type redirector struct {
	targets []string
	n       atomic.Int64
}

func (rd *redirector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/play/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	i := rd.n.Add(1)
	http.Redirect(w, r, rd.targets[int(i)%len(rd.targets)]+"/live/"+rest, http.StatusFound)
}

// TestPlayersThroughPoP runs 200 players, HLS and DASH, for 10 s against
// an in-process pipeline with one broadcaster: half of them go to the
// PoP, half are redirected by a load balancer to the PoP or the origin.
// Nobody stalls, nothing fails, and each player stays where it was sent.
func TestPlayersThroughPoP(t *testing.T) {
	p := testpipeline.Start(t)
	lb := &redirector{targets: []string{p.PoP, p.Origin}}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)

	rep := runReport(t, Config{
		Targets:      []string{p.PoP, lbSrv.URL + "/play/"},
		Schedule:     Steady(200),
		Duration:     10 * time.Second,
		DASHShare:    0.5,
		Broadcasters: 1,
		RTMP:         p.RTMP,
		PublishKey:   p.PublishKey,
		Metrics:      []string{p.PoP},
		Logger:       logtest.Logger(t, slog.LevelWarn),
	})

	if rep.Players != 200 || rep.PeakViewers != 200 || rep.NeverStarted != 0 {
		t.Errorf("%d players, peak %d, %d never started; want 200, 200, 0", rep.Players, rep.PeakViewers, rep.NeverStarted)
	}
	if rep.Stalls != 0 || rep.ErrorCount != 0 {
		t.Errorf("%d stalls and %d errors (%v), want none", rep.Stalls, rep.ErrorCount, rep.Errors)
	}
	seg := rep.Classes["segment"]
	// About 10 s of video and audio per player, started 3 segments behind.
	if min := int64(200 * 2 * 10); seg.Requests < min || seg.Bytes == 0 {
		t.Errorf("%d segment requests (%d bytes), want at least %d", seg.Requests, seg.Bytes, min)
	}
	if rep.FirstSegment.Count != 200 || rep.FirstSegment.P50 <= 0 {
		t.Errorf("first segment %+v", rep.FirstSegment)
	}
	if len(rep.Series) != 10 || rep.Series[5].Viewers != 200 || rep.Series[5].Requests == 0 {
		t.Errorf("series: %d seconds, second 5: %+v", len(rep.Series), rep.Series)
	}
	popHost, originHost := strings.TrimPrefix(p.PoP, "http://"), strings.TrimPrefix(p.Origin, "http://")
	if rep.Hosts[popHost] < 100 || rep.Hosts[originHost] < 40 || len(rep.Hosts) != 2 {
		t.Errorf("sessions by host %v; want 100+ on the PoP %s, about 50 on the origin %s", rep.Hosts, popHost, originHost)
	}
	// The load balancer saw the entry requests of its 100 players (and
	// the start-up probes), nothing else: players stuck to their host.
	if n := lb.n.Load(); n < 100 || n > 120 {
		t.Errorf("the load balancer answered %d requests, want its 100 players' entries", n)
	}
	u := rep.Upstream
	if u == nil || u.Segments == 0 || u.PoPFetchesPerSegment > 1.5 {
		t.Errorf("upstream %+v: want about one PoP fetch per segment", u)
	}
}

// TestBroadcasterStopStalls stops the broadcaster mid-run: players drain
// their buffers and the report counts stalls, in the totals and in the
// one-minute user stall rate.
func TestBroadcasterStopStalls(t *testing.T) {
	p := testpipeline.Start(t)
	rep := runReport(t, Config{
		Targets:      []string{p.PoP},
		Schedule:     Steady(40),
		Duration:     11 * time.Second,
		DASHShare:    0.5,
		Broadcasters: 1,
		RTMP:         p.RTMP,
		PublishKey:   p.PublishKey,
		StreamPrefix: "stopping",
		BroadcastFor: 3 * time.Second,
	})
	if rep.Stalls == 0 || rep.StalledPlayers != 40 || rep.StallRate != 1 {
		t.Errorf("%d stalls, %d stalled players, stall rate %v; want every player stalled", rep.Stalls, rep.StalledPlayers, rep.StallRate)
	}
	last := rep.Series[len(rep.Series)-1]
	if last.StallRate1m != 1 || last.Users1m != 40 || last.Stalls1m == 0 {
		t.Errorf("last second %+v: want a one-minute stall rate of 1", last)
	}
	if rep.RebufferRatio <= 0 {
		t.Errorf("rebuffer ratio %v", rep.RebufferRatio)
	}
}

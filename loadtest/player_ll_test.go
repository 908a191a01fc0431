package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golivestream/live/internal/democlip"
	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/loadtest/testpipeline"
	"github.com/golivestream/live/publisher"
)

// publishDemo publishes the demo clip in real time as stream name until
// the test ends, and waits until its first variant lists 3 segments.
func publishDemo(t *testing.T, p *testpipeline.Pipeline, name string) {
	t.Helper()
	clip, err := publisher.LoadClip(democlip.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- publisher.Publish(ctx, publisher.Config{URL: p.RTMP + name + "?key=" + url.QueryEscape(p.PublishKey), Clip: clip})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("publish: %v", err)
		}
	})
	g, err := New(Config{Targets: []string{p.PoP}, Streams: []string{name}, Schedule: Steady(1), StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.newRun().awaitStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// getList GETs the media playlist at u with query (nil: none) on l.
func getList(t *testing.T, l *lane, u *url.URL, query string) *segmentList {
	t.Helper()
	var q []byte
	if query != "" {
		q = []byte(query)
	}
	body, _, _, err := l.do(getRequest{base: u, query: q, keep: true})
	if err != nil {
		t.Fatalf("%s?%s: %v", u, query, err)
	}
	ml, err := parseMedia(body)
	if err != nil {
		t.Fatalf("%s?%s: %v\n%s", u, query, err, body)
	}
	return ml
}

// TestLowLatencyOriginOutput runs the LL playlist and chunk logic over
// what our origin serves through the PoP, for a stream published in real
// time: where a player goes next from each part, where it starts, the
// hint answered when its part is produced, delta updates, and low-latency
// DASH's segment after the MPD's last read chunk by chunk where the
// timeline puts it.
func TestLowLatencyOriginOutput(t *testing.T) {
	p := testpipeline.Start(t)
	const stream = "llorigin"
	publishDemo(t, p, stream)
	l := testLane(t.Context(), 10*time.Second)
	defer l.close()
	entry := mustParse(t, p.PoP+"/live/"+stream+"/index.m3u8")
	body, final, _, err := l.get(entry, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseMultivariant(body)
	if err != nil {
		t.Fatal(err)
	}
	media, err := final.Parse(e.variants[0].id)
	if err != nil {
		t.Fatal(err)
	}
	// Blocking reloads until the playlist lists 9 segments, so that a
	// delta update skips some (CAN-SKIP-UNTIL is 6 target durations).
	full := getList(t, l, media, "")
	for listEnd(full) < 9 {
		full = getList(t, l, media, fmt.Sprintf("_HLS_msn=%d&_HLS_part=0", listEnd(full)+1))
	}
	ll := full.ll
	if ll == nil || !ll.canBlock || !ll.canSkip || ll.delta || ll.holdBack != 3*ll.partTarget || !ll.hasHint {
		t.Fatalf("LL-HLS tags: %+v", ll)
	}

	// The parts: named {n}.{p}.m4s, no longer than the part target, dated
	// one after the other from their segment's date.
	for i, pt := range ll.parts {
		if pt.uri != fmt.Sprintf("%d.%d.m4s", pt.msn, pt.index) || pt.duration <= 0 || pt.duration > ll.partTarget || pt.date.IsZero() {
			t.Errorf("part %+v", pt)
		}
		if i > 0 && ll.parts[i-1].msn == pt.msn && !pt.date.Equal(ll.parts[i-1].date.Add(ll.parts[i-1].duration)) {
			t.Errorf("part %+v does not follow %+v", pt, ll.parts[i-1])
		}
		if pt.index == 0 && full.listed(pt.msn) && !pt.date.Equal(full.dates[pt.msn-full.first]) {
			t.Errorf("part %+v is not dated as its segment, %v", pt, full.dates[pt.msn-full.first])
		}
	}
	if ll.hintURI != fmt.Sprintf("%d.%d.m4s", ll.hint.msn, ll.hint.index) {
		t.Errorf("hint %+v is %q", ll.hint, ll.hintURI)
	}

	// Where a player goes next.
	last := ll.parts[len(ll.parts)-1].partPos
	firstWithParts := ll.parts[0].msn
	afterFirst, afterStep := partPos{firstWithParts + 1, 0}, stepPart
	if _, ok := full.part(afterFirst); !ok {
		afterStep = stepHint
	}
	for _, tc := range []struct {
		name string
		in   partPos
		step llStep
		out  partPos
	}{
		{"the last part listed", last, stepPart, last},
		{"the hinted part", ll.hint, stepHint, ll.hint},
		{"the part after the hint", ll.hint.after(), stepReload, ll.hint.after()},
		{"the segment after the one being produced", partPos{listEnd(full) + 1, 0}, stepReload, partPos{listEnd(full) + 1, 0}},
		{"past the parts of the first segment that lists them", partPos{firstWithParts, full.partsOf(firstWithParts)}, afterStep, afterFirst},
		{"a segment older than the parts", partPos{full.first, 0}, stepSegment, partPos{full.first, 0}},
	} {
		if step, out := full.llNext(tc.in); step != tc.step || out != tc.out {
			t.Errorf("%s, %+v: %v, %+v; want %v, %+v", tc.name, tc.in, step, out, tc.step, tc.out)
		}
	}
	// Where it starts: PART-HOLD-BACK behind the end, at an independent
	// part.
	pos, skip, ok := full.llStart(ll.holdBack)
	start, found := full.part(pos)
	if !ok || !found || !start.independent || skip < 0 {
		t.Fatalf("start %+v, %v, skipping %v", pos, start, skip)
	}
	for i := range ll.parts {
		if ll.parts[i].partPos == pos && full.edgeBack(i)-skip != ll.holdBack {
			t.Errorf("start %+v begins %v before the end, skipping %v: not PART-HOLD-BACK %v", pos, full.edgeBack(i), skip, ll.holdBack)
		}
	}

	// The hinted part, held until it is produced: a chunk, moof and mdat.
	var hint chunkLog
	if _, _, _, err := l.do(getRequest{base: media, ref: ll.hintURI, sink: &hint}); err != nil || len(hint.starts) != 1 || hint.durs[0] == 0 {
		t.Fatalf("hinted part %s: %v, chunks %v of %v ticks", ll.hintURI, err, hint.starts, hint.durs)
	}
	// The blocking reload for it lists it and hints the next.
	q := fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", ll.hint.msn, ll.hint.index)
	next := getList(t, l, media, q)
	if step, _ := next.llNext(ll.hint); step != stepPart {
		t.Errorf("the playlist for the hinted part: %v for it, want it listed", step)
	}
	if h := next.ll.hint; h != ll.hint.after() && h != (partPos{ll.hint.msn + 1, 0}) {
		t.Errorf("the playlist for part %+v hints %+v", ll.hint, h)
	}
	// Its delta update skips the oldest segments, and lists the rest as
	// the whole playlist does.
	delta := getList(t, l, media, q+"&_HLS_skip=YES")
	if !delta.ll.delta || delta.first <= next.first || listEnd(delta) < listEnd(next) {
		t.Fatalf("delta update from %d to %d (delta %v); whole playlist from %d to %d", delta.first, listEnd(delta), delta.ll.delta, next.first, listEnd(next))
	}
	for n := delta.first; n < listEnd(next); n++ {
		if delta.uri(n) != next.uri(n) || delta.duration(n) != next.duration(n) || !delta.dates[n-delta.first].Equal(next.dates[n-next.first]) {
			t.Errorf("segment %d: %s %v %v in the delta update, %s %v %v in the playlist", n,
				delta.uri(n), delta.duration(n), delta.dates[n-delta.first], next.uri(n), next.duration(n), next.dates[n-next.first])
		}
	}
	if step, _ := delta.llNext(partPos{next.first, 0}); delta.first > next.first && step != stepBehind {
		t.Errorf("a segment the delta update skips: %v, want stepBehind", step)
	}

	// Low-latency DASH: the MPD says how, and the segment after its last
	// one is where the timeline puts it, read chunk by chunk.
	mpdURL := mustParse(t, p.PoP+"/live/"+stream+"/manifest.mpd")
	body, _, _, err = l.get(mpdURL, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	me, err := parseMPD(body)
	if err != nil {
		t.Fatal(err)
	}
	v := me.lists[me.variants[0].id]
	d := v.dash
	// Latency@target: 1 s, every timeline being open (the clip's
	// keyframes are a segment apart).
	if !d.chunked || d.availOffset != 750*time.Millisecond || d.target != 1000*time.Millisecond || !d.wallZero.Equal(d.availZero) || d.availZero.IsZero() {
		t.Fatalf("MPD timing %+v", d)
	}
	for i := 1; i < len(d.starts); i++ {
		if d.starts[i] != d.starts[i-1]+v.durations[i-1] {
			t.Errorf("segment %d starts at %v, the one before ends at %v", v.first+uint64(i), d.starts[i], d.starts[i-1]+v.durations[i-1])
		}
	}
	n, at := dashAt(v, d.starts[len(d.starts)-1]+v.durations[len(d.starts)-1])
	if n != listEnd(v) {
		t.Fatalf("dashAt the end of the MPD: segment %d, want %d", n, listEnd(v))
	}
	var chunks chunkLog
	if _, _, _, err := l.do(getRequest{base: mpdURL, ref: v.uri(n), sink: &chunks}); err != nil || len(chunks.starts) < 2 {
		t.Fatalf("segment %d: %v, %d chunks", n, err, len(chunks.starts))
	}
	if got := mediaTime(chunks.starts[0], d.timescale) - d.pto; got != at {
		t.Errorf("segment %d begins at %v, where the timeline puts it is %v", n, got, at)
	}
	var sum uint64
	for i, s := range chunks.starts {
		if i > 0 && s != chunks.starts[i-1]+chunks.durs[i-1] {
			t.Errorf("chunk %d of segment %d begins at %d, the one before ends at %d", i, n, s, chunks.starts[i-1]+chunks.durs[i-1])
		}
		sum += chunks.durs[i]
	}
	body, _, _, err = l.get(mpdURL, "", true, body)
	if err != nil {
		t.Fatal(err)
	}
	if me, err = parseMPD(body); err != nil {
		t.Fatal(err)
	}
	if v := me.lists[me.variants[0].id]; v.listed(n) && v.duration(n) != mediaTime(sum, d.timescale) {
		t.Errorf("segment %d: its chunks last %v, the MPD says %v", n, mediaTime(sum, d.timescale), v.duration(n))
	}
}

// TestLowLatencyPlayers runs players of the four kinds together for 12 s
// through the PoP: LL-HLS and low-latency DASH players fetch parts and
// chunks, held at the PoP until produced, play closer to the live edge
// than the others, and nobody stalls.
func TestLowLatencyPlayers(t *testing.T) {
	p := testpipeline.Start(t)
	rep := runReport(t, Config{
		Targets:      []string{p.PoP},
		Schedule:     Steady(12),
		Duration:     12 * time.Second,
		DASHShare:    0.5,
		LowLatency:   0.5,
		Broadcasters: 1,
		RTMP:         p.RTMP,
		PublishKey:   p.PublishKey,
		StreamPrefix: "lowlatency",
		Metrics:      []string{p.PoP},
		Logger:       logtest.Logger(t, slog.LevelWarn),
	})
	for _, k := range []string{"hls", "ll-hls", "dash", "ll-dash"} {
		if rep.PlayersByKind[k] == 0 || rep.GlassToPlayer[k].Count == 0 {
			t.Errorf("%s: %d players, latency %+v", k, rep.PlayersByKind[k], rep.GlassToPlayer[k])
		}
	}
	if rep.Stalls != 0 || rep.ErrorCount != 0 || rep.NeverStarted != 0 {
		t.Errorf("%d stalls, %d errors (%v), %d never started; want none", rep.Stalls, rep.ErrorCount, rep.Errors, rep.NeverStarted)
	}
	for _, pair := range [][2]string{{"ll-hls", "hls"}, {"ll-dash", "dash"}} {
		low, other := rep.GlassToPlayer[pair[0]], rep.GlassToPlayer[pair[1]]
		if low.P50 <= 0 || low.P50 >= other.P50 || low.P99 >= other.P99 {
			t.Errorf("glass-to-player latency: %s p50 %.0f ms p99 %.0f ms, %s p50 %.0f ms p99 %.0f ms; want the first lower", pair[0], low.P50, low.P99, pair[1], other.P50, other.P99)
		}
	}
	// 4 LL-HLS players with video and audio, 3 low-latency DASH ones:
	// about 8 parts a second each, and 2 segments.
	if n := rep.Classes["part"].Requests; n < 4*6*10+3*2*10 {
		t.Errorf("%d parts and segments read as produced, want more", n)
	}
	u := rep.Upstream
	if u == nil || u.Parts < 20 {
		t.Fatalf("upstream %+v: want the parts LL-HLS players saw listed", u)
	}
	// Parts asked for before they existed were held at the PoP, and
	// released when they came.
	if r := u.WaiterRelease["part"]; r.Count == 0 {
		t.Errorf("no part request was held at the PoP: %+v", u.WaiterRelease)
	}
	t.Logf("PoP fetches from the origin per part: %.2f playlists, %.2f in all", u.PoPPlaylistFetchesPerPart, u.PoPFetchesPerPart)
}

// TestHintNotProduced: a hinted part the server then says will not be
// produced (404: its segment ended first) is counted apart, not as a
// failure; other failures of a hint are.
func TestHintNotProduced(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v/7.4.m4s":
			http.NotFound(w, r)
		case "/v/7.5.m4s":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("part"))
		}
	}))
	t.Cleanup(srv.Close)
	g, err := New(Config{Targets: []string{srv.URL}, Streams: []string{"s"}, Schedule: Steady(1)})
	if err != nil {
		t.Fatal(err)
	}
	r := g.newRun()
	r.rec = newRecorder(time.Now(), time.Minute)
	p := &player{r: r, log: slog.New(slog.DiscardHandler)}
	l := testLane(t.Context(), 5*time.Second)
	defer l.close()
	base := mustParse(t, srv.URL+"/v/index.m3u8")
	for _, c := range []struct {
		uri          string
		ok           bool
		gone, errors int64
	}{{"7.3.m4s", true, 0, 0}, {"7.4.m4s", false, 1, 0}, {"7.5.m4s", false, 1, 1}} {
		at, err := p.fetchHint(l, base, c.uri)
		if (err == nil) != c.ok || at.IsZero() == c.ok || r.rec.hintsGone.Load() != c.gone || r.rec.totalErrors.Load() != c.errors {
			t.Errorf("%s: %v at %v; %d not produced, %d errors; want ok %v, %d, %d", c.uri, err, at, r.rec.hintsGone.Load(), r.rec.totalErrors.Load(), c.ok, c.gone, c.errors)
		}
	}
}

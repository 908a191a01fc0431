package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// flakyOrigin lists three segments, each failing its own way: 0 answers
// 404, 1 cuts its body short, 2 answers too late. Its MPD is garbage.
func flakyOrigin(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live/s/index.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv/index.m3u8\n"))
	})
	mux.HandleFunc("GET /live/s/manifest.mpd", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("<MPD><Period><AdaptationSet"))
	})
	mux.HandleFunc("GET /live/s/v/index.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n" +
			"#EXTINF:1.0,\n0.m4s\n#EXTINF:1.0,\n1.m4s\n#EXTINF:1.0,\n2.m4s\n"))
	})
	mux.HandleFunc("GET /live/s/v/init.mp4", func(w http.ResponseWriter, _ *http.Request) { w.Write(make([]byte, 100)) })
	mux.HandleFunc("GET /live/s/v/0.m4s", http.NotFound)
	mux.HandleFunc("GET /live/s/v/1.m4s", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(make([]byte, 1000))
		panic(http.ErrAbortHandler) // the body stops short
	})
	mux.HandleFunc("GET /live/s/v/2.m4s", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never in time
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestPlayerErrorKinds runs players against a failing origin and a closed
// port, with the load generator's client and with net/http's: every
// failure is counted under its kind, and nobody plays.
func TestPlayerErrorKinds(t *testing.T) {
	for _, c := range []struct {
		name      string
		transport http.RoundTripper
	}{{"lane", nil}, {"nethttp", netHTTPTransport(3)}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testPlayerErrorKinds(t, c.transport)
		})
	}
}

func testPlayerErrorKinds(t *testing.T, transport http.RoundTripper) {
	srv := flakyOrigin(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	// Player 0: DASH on the origin (parse); 1: HLS on the closed port
	// (connect); 2: HLS on the origin (404, aborted, timeout).
	g, err := New(Config{
		Targets:        []string{srv.URL, closed},
		Streams:        []string{"s"},
		Schedule:       Steady(3),
		Duration:       5 * time.Second,
		DASHShare:      0.2,
		RequestTimeout: 300 * time.Millisecond,
		Transport:      transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !isDASH(0, 0.2) || isDASH(1, 0.2) || isDASH(2, 0.2) {
		t.Fatal("the players' formats are not the ones this test expects")
	}
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"parse", "connect", "404", "aborted", "timeout"} {
		if rep.Errors[kind] == 0 {
			t.Errorf("no %q error counted: %v", kind, rep.Errors)
		}
	}
	if rep.NeverStarted != 3 || rep.Stalls != 0 {
		t.Errorf("%d players never started, %d stalls; want 3 and 0 (start-up is not a stall)", rep.NeverStarted, rep.Stalls)
	}
	if rep.Classes["init"].Requests == 0 {
		t.Error("the HLS player did not fetch its init segment")
	}
	var sum int64
	for _, s := range rep.Series {
		sum += s.Errors
	}
	if sum == 0 || sum > rep.ErrorCount {
		t.Errorf("series errors %d, total %d", sum, rep.ErrorCount)
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	g, err := New(Config{Targets: []string{"http://h:1", "http://h:2/play"}, Streams: []string{"s"}, Schedule: Steady(1)})
	if err != nil {
		t.Fatal(err)
	}
	if g.cfg.Duration != time.Minute || g.cfg.RequestTimeout != 10*time.Second || g.cfg.StartTimeout != 30*time.Second {
		t.Errorf("defaults %+v", g.cfg)
	}
	if got := g.entryURL(g.cfg.Targets[0], "s", false); got != "http://h:1/live/s/index.m3u8" {
		t.Errorf("entry %s", got)
	}
	if got := g.entryURL(g.cfg.Targets[1], "s", true); got != "http://h:2/play/s/manifest.mpd" {
		t.Errorf("entry %s", got)
	}
	bad := []Config{
		{},
		{Schedule: Steady(1), Streams: []string{"s"}},
		{Schedule: Steady(1), Targets: []string{"http://h"}},
		{Schedule: Steady(1), Targets: []string{"ftp://h"}, Streams: []string{"s"}},
		{Schedule: Steady(1), Targets: []string{"http://h"}, Streams: []string{"a/b"}},
		{Schedule: Steady(1), Targets: []string{"http://h"}, Streams: []string{"s"}, DASHShare: 2},
		{Schedule: Steady(1), Targets: []string{"http://h"}, Streams: []string{"s"}, Rendition: "best"},
		{Schedule: Steady(1), Targets: []string{"http://h"}, Streams: []string{"s"}, Duration: 3 * time.Hour},
		{Broadcasters: 1, RTMP: "http://h/"},
		{Schedule: Schedule{{time.Second, 1}}, Targets: []string{"http://h"}, Streams: []string{"s"}},
	}
	for i, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
}

func TestIsDASHShare(t *testing.T) {
	for _, share := range []float64{0, 0.25, 0.5, 1} {
		n := 0
		for i := range 1000 {
			if isDASH(i, share) {
				n++
			}
		}
		if want := int(share * 1000); n < want-5 || n > want+5 {
			t.Errorf("share %v: %d of 1000 players on DASH", share, n)
		}
	}
}

// TestPlayerFetchesTracksTogether: a player fetches the audio segment
// alongside the video one, as players do. This origin answers video
// segment n only once audio segment n has been asked for: a player that
// fetched one track after the other would time out on every segment.
func TestPlayerFetchesTracksTogether(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]chan struct{}{} // audio segment asked for, by name
	arrival := func(name string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if asked[name] == nil {
			asked[name] = make(chan struct{})
		}
		return asked[name]
	}
	media := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n"
	for n := range 30 {
		media += fmt.Sprintf("#EXTINF:1.0,\n%d.m4s\n", n)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live/s/index.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-VERSION:7\n" +
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",DEFAULT=YES,URI=\"a/index.m3u8\"\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO=\"a\"\nv/index.m3u8\n"))
	})
	mux.HandleFunc("GET /live/s/{track}/{file}", func(w http.ResponseWriter, r *http.Request) {
		track, file := r.PathValue("track"), r.PathValue("file")
		switch {
		case file == "index.m3u8":
			w.Write([]byte(media))
		case file == "init.mp4":
			w.Write(make([]byte, 100))
		case track == "a":
			ch := arrival(file)
			mu.Lock()
			select {
			case <-ch:
			default:
				close(ch)
			}
			mu.Unlock()
			w.Write(make([]byte, 1000))
		default:
			select {
			case <-arrival(file):
				w.Write(make([]byte, 5000))
			case <-r.Context().Done():
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	g, err := New(Config{
		Targets:        []string{srv.URL},
		Streams:        []string{"s"},
		Schedule:       Steady(1),
		Duration:       3 * time.Second,
		RequestTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.ErrorCount != 0 || rep.NeverStarted != 0 {
		t.Errorf("%d errors %v, %d players never started; want none", rep.ErrorCount, rep.Errors, rep.NeverStarted)
	}
	if got := rep.Classes["segment"].Requests; got < 4 {
		t.Errorf("%d segment requests; want at least two of each track", got)
	}
}

// TestDASHPlayerWaitsForWholeSegments: a DASH player not in low-latency
// mode asks for a segment once it is complete (ISO/IEC 23009-1
// 5.3.9.5.3, @availabilityTimeComplete false), not as soon as an open
// timeline (S@r -1, as our origin writes it) announces it. This origin
// lists every segment begun and notes each one asked for before its end.
func TestDASHPlayerWaitsForWholeSegments(t *testing.T) {
	const seg = 200 * time.Millisecond
	ast := time.Now().Add(-10 * seg).Truncate(time.Millisecond)
	var mu sync.Mutex
	var early []string // segments asked for before their end
	whole := 0         // and after it
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live/s/manifest.mpd", func(w http.ResponseWriter, _ *http.Request) {
		n := int(time.Since(ast) / seg) // the segment being produced
		fmt.Fprintf(w, `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT0.2S" availabilityStartTime="%s">
  <Period id="0" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <Representation id="v" bandwidth="1000">
        <SegmentTemplate media="$Number$.m4s" initialization="init.mp4" startNumber="0" timescale="1000" availabilityTimeOffset="0.15" availabilityTimeComplete="false">
          <SegmentTimeline><S t="0" d="200" r="%d"/><S t="%d" d="200" r="-1"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>`, ast.UTC().Format(time.RFC3339Nano), n-1, n*200)
	})
	// What the generator's readiness probe reads.
	mux.HandleFunc("GET /live/s/index.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv.m3u8\n"))
	})
	mux.HandleFunc("GET /live/s/v.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.2,\n0.m4s\n#EXTINF:0.2,\n1.m4s\n#EXTINF:0.2,\n2.m4s\n"))
	})
	mux.HandleFunc("GET /live/s/init.mp4", func(w http.ResponseWriter, _ *http.Request) { w.Write(make([]byte, 100)) })
	mux.HandleFunc("GET /live/s/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.PathValue("n"), "%d.m4s", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		// 5 ms for the two clocks' rounding.
		if ahead := ast.Add(time.Duration(n+1) * seg).Sub(time.Now()); ahead > 5*time.Millisecond {
			mu.Lock()
			early = append(early, fmt.Sprintf("%d.m4s %v early", n, ahead.Round(time.Millisecond)))
			mu.Unlock()
		} else {
			mu.Lock()
			whole++
			mu.Unlock()
		}
		w.Write(make([]byte, 1000))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	rep := runReport(t, Config{
		Targets:        []string{srv.URL},
		Streams:        []string{"s"},
		Schedule:       Steady(1),
		Duration:       2 * time.Second,
		DASHShare:      1,
		RequestTimeout: time.Second,
	})
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Errorf("segments asked for before they were complete: %v", early)
	}
	// 2 s of 200-ms segments, from 3 behind the live edge.
	if whole < 8 || rep.ErrorCount != 0 || rep.Stalls != 0 {
		t.Errorf("%d whole segments, %d errors %v, %d stalls; want 8 or more, no errors or stalls", whole, rep.ErrorCount, rep.Errors, rep.Stalls)
	}
}

package origin

import (
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/internal/mpdtest"
)

// periodsFixture is TestMPDPeriods's presentation: the fixture's
// instance, continued after by another (epoch mf1epoch); it returns the
// later one, its snapshot, the earlier one and the Config. The earlier
// one's media runs to 10.692 s: continued after less, the later Period
// begins there, after its own timeline zero.
func periodsFixture(t *testing.T, after time.Duration) (cur *stream, snap *snapshot, old *stream, cfg Config) {
	t.Helper()
	old, oldSnap, cfg := fixture(30*time.Second, false)
	old.snap.Store(oldSnap)
	cur, snap, _ = fixture(30*time.Second, false)
	cur.epoch = "mf1epoch"
	cur.ast = old.ast.Add(after)
	cur.continues(old)
	cur.snap.Store(snap)
	return cur, snap, old, cfg
}

// TestLowLatencyMPD checks the low-latency DASH signalling of the MPD
// (DASH-IF IOP, low-latency modes): while the stream is live and its
// segments are chunked, the live Period's SegmentTemplates are available
// a segment less a chunk before their end, incomplete, and a
// ServiceDescription names the live Period's ProducerReferenceTime;
// every AdaptationSet has one. Each MPD validates against the schema.
func TestLowLatencyMPD(t *testing.T) {
	for _, tc := range []struct {
		name           string
		segment, chunk time.Duration
		ended, periods bool
		offset         float64 // the live Period's availabilityTimeOffset; 0: not low latency
		reference      uint32  // the Latency@referenceId
	}{
		{name: "live", segment: time.Second, chunk: 250 * time.Millisecond, offset: 0.75},
		{name: "2 s of 500 ms chunks", segment: 2 * time.Second, chunk: 500 * time.Millisecond, offset: 1.5},
		{name: "one chunk a segment", segment: time.Second, chunk: time.Second},
		{name: "chunk unset", segment: time.Second},
		{name: "ended", segment: time.Second, chunk: 250 * time.Millisecond, ended: true},
		{name: "two periods", segment: time.Second, chunk: 250 * time.Millisecond, periods: true, offset: 0.75, reference: 11000},
		{name: "two periods, ended", segment: time.Second, chunk: 250 * time.Millisecond, periods: true, ended: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cur view
			var prior []view
			var cfg Config
			if tc.periods {
				st, snap, old, c := periodsFixture(t, 11*time.Second)
				cur, prior, cfg = view{&st.instance, snap}, views([]*stream{old}), c
			} else {
				st, snap, c := fixture(30*time.Second, false)
				cur, cfg = view{&st.instance, snap}, c
			}
			cur.snap.ended = tc.ended
			cfg.SegmentDuration, cfg.ChunkDuration = tc.segment, tc.chunk
			body, err := buildMPD(cur, prior, cfg, cur.ast.Add(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			mpdtest.Validate(t, body)
			m, err := mpd.ReadFromString(string(body))
			if err != nil {
				t.Fatal(err)
			}

			for i, p := range m.Periods {
				live := i == len(m.Periods)-1
				for _, as := range p.AdaptationSets {
					if n := len(as.ProducerReferenceTimes); n != 1 {
						t.Errorf("period %s, %s: %d ProducerReferenceTimes, want 1", p.Id, as.ContentType, n)
					}
					for _, rep := range as.Representations {
						tpl := rep.SegmentTemplate
						want := 0.0
						if live {
							want = tc.offset
						}
						if got := float64(tpl.AvailabilityTimeOffset); got != want {
							t.Errorf("period %s, %s: availabilityTimeOffset %v, want %v", p.Id, rep.Id, got, want)
						}
						complete := tpl.AvailabilityTimeComplete == nil || *tpl.AvailabilityTimeComplete
						if complete != (want == 0) {
							t.Errorf("period %s, %s: availabilityTimeComplete %v with availabilityTimeOffset %v", p.Id, rep.Id, complete, want)
						}
					}
				}
			}

			if tc.offset == 0 {
				if len(m.ServiceDescription) != 0 {
					t.Errorf("ServiceDescription in an MPD that is not low latency")
				}
				return
			}
			if len(m.ServiceDescription) != 1 {
				t.Fatalf("%d ServiceDescriptions, want 1", len(m.ServiceDescription))
			}
			sd := m.ServiceDescription[0]
			if len(sd.Latencies) != 1 || len(sd.PlaybackRates) != 1 {
				t.Fatalf("ServiceDescription with %d Latency, %d PlaybackRate; want one each", len(sd.Latencies), len(sd.PlaybackRates))
			}
			lat, rate := sd.Latencies[0], sd.PlaybackRates[0]
			if lat.Target == nil || lat.Min == nil || lat.Max == nil ||
				*lat.Min != 1000 || *lat.Target != 1500 || *lat.Max != 3000 {
				t.Errorf("Latency min %v target %v max %v, want 1000, 1500, 3000 ms", lat.Min, lat.Target, lat.Max)
			}
			if rate.Min != 0.96 || rate.Max != 1.1 {
				t.Errorf("PlaybackRate %v to %v, want 0.96 to 1.1", rate.Min, rate.Max)
			}
			live := m.Periods[len(m.Periods)-1]
			if lat.ReferenceId != tc.reference || live.AdaptationSets[0].ProducerReferenceTimes[0].Id != tc.reference {
				t.Errorf("Latency@referenceId %d, the live Period's ProducerReferenceTime@id %d; want both %d",
					lat.ReferenceId, live.AdaptationSets[0].ProducerReferenceTimes[0].Id, tc.reference)
			}
		})
	}
}

// TestProducerReferenceTimeIsPDT checks that each AdaptationSet's
// ProducerReferenceTime gives every segment's first sample the wall-clock
// time that the HLS media playlist of the same rendition gives it
// (EXT-X-PROGRAM-DATE-TIME), in both Periods of a presentation; and that
// it agrees with the MPD timeline (availabilityStartTime plus the
// segment's place in its Period) where the Period begins where its
// instance's timeline does, and is that much earlier where it begins
// later (instance.start).
func TestProducerReferenceTimeIsPDT(t *testing.T) {
	for _, after := range []time.Duration{11 * time.Second, 10 * time.Second} {
		t.Run(after.String(), func(t *testing.T) { checkPRTIsPDT(t, after) })
	}
}

func checkPRTIsPDT(t *testing.T, after time.Duration) {
	cur, snap, old, cfg := periodsFixture(t, after)
	body, err := buildMPD(view{&cur.instance, snap}, views([]*stream{old}), cfg, cur.ast.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	ast, err := time.Parse(time.RFC3339, string(m.AvailabilityStartTime))
	if err != nil {
		t.Fatal(err)
	}
	instances := map[string]*stream{old.epoch: old, cur.epoch: cur}
	if len(m.Periods) != 2 {
		t.Fatalf("%d periods, want 2", len(m.Periods))
	}
	for _, p := range m.Periods {
		st := instances[p.Id]
		sn := st.snap.Load()
		// The Period begins at ast - pres unless media ran ahead.
		ahead := time.Duration(*p.Start) - st.ast.Sub(st.pres)
		for _, as := range p.AdaptationSets {
			prt := as.ProducerReferenceTimes[0]
			wall, err := time.Parse(time.RFC3339, prt.WallClockTime)
			if err != nil {
				t.Fatalf("period %s: wallClockTime %q: %v", p.Id, prt.WallClockTime, err)
			}
			if prt.Type != "encoder" || prt.UTCTiming == nil || prt.UTCTiming.Value != TimePath {
				t.Errorf("period %s: type %q, UTCTiming %+v; want encoder, the MPD's", p.Id, prt.Type, prt.UTCTiming)
			}
			for _, rep := range as.Representations {
				r := sn.rendition(rep.Id)
				var media playlist.Media
				if err := media.Unmarshal(mediaPlaylist(&st.instance, r, sn, false)); err != nil {
					t.Fatal(err)
				}
				ts := rep.SegmentTemplate.GetTimescale()
				for i, e := range r.listed() {
					pdt := *media.Segments[i].DateTime
					byPRT := wall.Add(mediatime.Duration(e.seg.Start-int64(prt.PresentationTime), ts))
					if !byPRT.Equal(pdt) {
						t.Errorf("period %s, %s, segment %d: ProducerReferenceTime puts it at %v, PROGRAM-DATE-TIME at %v",
							p.Id, rep.Id, e.seg.Number, byPRT, pdt)
					}
					byMPD := ast.Add(time.Duration(*p.Start) + mediatime.Duration(e.seg.Start, ts))
					if d := byMPD.Sub(byPRT); d != ahead {
						t.Errorf("period %s, %s, segment %d: the MPD timeline puts it %v after the ProducerReferenceTime, want %v",
							p.Id, rep.Id, e.seg.Number, d, ahead)
					}
				}
			}
		}
	}
}

// TestOpenTimeline checks that, in a live low-latency MPD, each
// Representation producing segments of the nominal duration announces
// the segment being produced, and the ones after it, with a last S
// element repeated until the next MPD update (@r -1) from the end of its
// last segment; that the others list their finished segments only; and
// that each MPD validates against the schema. The producing MPD is a
// golden file.
func TestOpenTimeline(t *testing.T) {
	const nominalVideo, nominalAudio = 90000, 48000 // a second
	for _, tc := range []struct {
		name string
		// setup changes the fixture's snapshot: a publisher feeds it
		// unless setup says otherwise.
		setup func(sn *snapshot)
		ended bool
		open  map[string]bool // by Representation
		// target is the ServiceDescription's Latency@target, ms (0:
		// none): the closer one only when every timeline is open.
		target uint32
	}{
		{name: "producing", open: map[string]bool{"v0": true, "a0": true}, target: 1000},
		{name: "a source of 2-s GOPs", setup: func(sn *snapshot) {
			for _, e := range sn.rendition("v0").entries {
				e.seg.Duration *= 2 // the timeline of v0 is made of them
			}
		}, open: map[string]bool{"a0": true}, target: 1500},
		{name: "publisher gone", setup: func(sn *snapshot) {
			sn.rendition("v0").partial, sn.rendition("a0").partial = nil, nil
		}, open: map[string]bool{}, target: 1500},
		{name: "ended", ended: true, open: map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, snap, cfg := fixture(30*time.Second, false)
			for _, r := range snap.renditions {
				r.partial = newPartial(r.next)
			}
			if tc.setup != nil {
				tc.setup(snap)
			}
			snap.ended = tc.ended
			body, err := buildMPD(view{&st.instance, snap}, nil, cfg, st.ast.Add(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			mpdtest.Validate(t, body)
			if tc.name == "producing" {
				checkGolden(t, "producing_manifest.mpd", body)
			}
			m, err := mpd.ReadFromString(string(body))
			if err != nil {
				t.Fatal(err)
			}
			var target uint32
			if len(m.ServiceDescription) > 0 && len(m.ServiceDescription[0].Latencies) > 0 && m.ServiceDescription[0].Latencies[0].Target != nil {
				target = *m.ServiceDescription[0].Latencies[0].Target
			}
			if target != tc.target {
				t.Errorf("Latency@target %d ms, want %d", target, tc.target)
			}
			for _, as := range m.Periods[0].AdaptationSets {
				for _, rep := range as.Representations {
					tl := rep.SegmentTemplate.SegmentTimeline
					last := tl.S[len(tl.S)-1]
					r := snap.rendition(rep.Id)
					listed := r.listed()
					end := uint64(listed[len(listed)-1].end())
					nominal := uint64(nominalAudio)
					if r.info.Video {
						nominal = nominalVideo
					}
					open := last.R < 0
					if open != tc.open[rep.Id] {
						t.Errorf("%s: open timeline %v, want %v", rep.Id, open, tc.open[rep.Id])
					}
					if open && (last.R != -1 || last.T == nil || *last.T != end || last.D != nominal) {
						t.Errorf("%s: last S t=%v d=%d r=%d, want t=%d d=%d r=-1", rep.Id, last.T, last.D, last.R, end, nominal)
					}
					// The finished segments are all listed, as before.
					var n int
					for _, s := range tl.S {
						if s.R >= 0 {
							n += s.R + 1
						}
					}
					if n != len(listed) {
						t.Errorf("%s: %d finished segments in the timeline, want %d", rep.Id, n, len(listed))
					}
				}
			}
		})
	}
}

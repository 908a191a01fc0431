package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// The probe measures, for each rendition, how long after its media
// reached ingest an LL-HLS part reaches a player through the PoP: it
// asks for the hinted part as a player does (the request is held until
// the part exists), and when the part's last byte is in, takes the
// wall-clock time of the part's end (EXT-X-PROGRAM-DATE-TIME plus the
// durations before it: when the frame after the part reached ingest)
// from the time. Zero would be a part delivered the moment the frame
// that closes it arrives; the source rendition shows what packaging,
// the origin and the PoP add, a transcoded rendition the transcoder
// besides. The player's latency is this plus how far behind the newest
// part it plays (PART-HOLD-BACK for hls.js).

// partAges is what the probe measured for one rendition.
type partAges struct {
	Kind      string  `json:"kind"` // "part_age"
	Rendition string  `json:"rendition"`
	Ages      stats   `json:"age_s"`
	Hold      float64 `json:"part_hold_back_s"`
	Target    float64 `json:"part_target_s"`
	// Unproduced counts the hinted parts that were never produced
	// (404): the segment ended first.
	Unproduced int `json:"unproduced_hints"`
}

func (p partAges) summary() string {
	return fmt.Sprintf("part age %-3s median %.3f s (p10 %.3f, p90 %.3f, max %.3f) over %d parts, %d hints never produced; PART-TARGET %.2f s, PART-HOLD-BACK %.2f s",
		p.Rendition, p.Ages.Median, p.Ages.P10, p.Ages.P90, p.Ages.Max, p.Ages.N, p.Unproduced, p.Target, p.Hold)
}

// probeParts probes every rendition of stream's multivariant playlist at
// base for d, all at once.
func probeParts(ctx context.Context, base, stream string, d time.Duration) ([]partAges, error) {
	mvURL := base + "/live/" + stream + "/index.m3u8"
	body, err := fetch(ctx, mvURL)
	if err != nil {
		return nil, err
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("multivariant playlist: %w", err)
	}
	var uris []string
	for _, v := range mv.Variants {
		uris = append(uris, v.URI)
	}
	for _, r := range mv.Renditions {
		if r.URI != nil {
			uris = append(uris, *r.URI)
		}
	}
	slices.Sort(uris)
	uris = slices.Compact(uris)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out := make([]partAges, len(uris))
	errs := make([]error, len(uris))
	var wg sync.WaitGroup
	for i, u := range uris {
		ref, err := url.Parse(mvURL)
		if err != nil {
			return nil, err
		}
		abs := ref.ResolveReference(&url.URL{Path: u}).String()
		wg.Go(func() { out[i], errs[i] = probeRendition(ctx, abs) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// probeRendition follows the preload hints of the media playlist at u
// until ctx is done.
func probeRendition(ctx context.Context, u string) (partAges, error) {
	res := partAges{Kind: "part_age", Rendition: u[strings.LastIndex(u[:strings.LastIndex(u, "/")], "/")+1 : strings.LastIndex(u, "/")]}
	pl, err := mediaPlaylist(ctx, u)
	if err != nil {
		return res, err
	}
	if pl.PartInf == nil || pl.ServerControl == nil || pl.ServerControl.PartHoldBack == nil {
		return res, fmt.Errorf("%s: no LL-HLS tags", u)
	}
	res.Target, res.Hold = pl.PartInf.PartTarget.Seconds(), pl.ServerControl.PartHoldBack.Seconds()
	var ages []float64
	for ctx.Err() == nil {
		n, p, ok := hinted(pl)
		if !ok {
			return res, fmt.Errorf("%s: no part hinted", u)
		}
		partURL := u[:strings.LastIndex(u, "/")+1] + pl.PreloadHint.URI
		if _, err := fetch(ctx, partURL); err != nil {
			if ctx.Err() != nil {
				break
			}
			// Not produced: its segment ended before it (a keyframe
			// came). The next part is the next segment's first.
			res.Unproduced++
			if pl, err = mediaPlaylist(ctx, u+"?_HLS_msn="+strconv.Itoa(n+1)+"&_HLS_part=0"); err != nil {
				break
			}
			continue
		}
		arrived := time.Now()
		pl, err = mediaPlaylist(ctx, u+"?_HLS_msn="+strconv.Itoa(n)+"&_HLS_part="+strconv.Itoa(p))
		if err != nil {
			break
		}
		end, ok := partEnd(pl, n, p)
		if !ok {
			return res, fmt.Errorf("%s: part %d.%d not listed after it arrived", u, n, p)
		}
		ages = append(ages, arrived.Sub(end).Seconds())
	}
	res.Ages = statsOf(ages)
	return res, nil
}

// hinted returns the segment and part numbers of pl's preload hint,
// {n}.{p}.m4s.
func hinted(pl *playlist.Media) (n, p int, ok bool) {
	if pl.PreloadHint == nil {
		return 0, 0, false
	}
	ns, ps, found := strings.Cut(strings.TrimSuffix(pl.PreloadHint.URI, ".m4s"), ".")
	n, err1 := strconv.Atoi(ns)
	p, err2 := strconv.Atoi(ps)
	return n, p, found && err1 == nil && err2 == nil
}

// partEnd returns the wall-clock time at which part p of segment n of pl
// ends: its segment's EXT-X-PROGRAM-DATE-TIME plus the durations of the
// parts up to it.
func partEnd(pl *playlist.Media, n, p int) (time.Time, bool) {
	var start time.Time
	var parts []*playlist.MediaPart
	for i, s := range pl.Segments {
		if s.DateTime != nil {
			start = *s.DateTime
		}
		if pl.MediaSequence+i == n {
			parts = s.Parts
			break
		}
		start = start.Add(s.Duration)
	}
	if pl.MediaSequence+len(pl.Segments) == n {
		parts = pl.Parts // the segment being produced
	}
	if start.IsZero() || p >= len(parts) {
		return time.Time{}, false
	}
	for _, pt := range parts[:p+1] {
		start = start.Add(pt.Duration)
	}
	return start, true
}

func mediaPlaylist(ctx context.Context, u string) (*playlist.Media, error) {
	body, err := fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	var pl playlist.Media
	if err := pl.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return &pl, nil
}

func fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", u, resp.Status)
	}
	return b, err
}

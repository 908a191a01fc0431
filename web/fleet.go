package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golivestream/live/internal/streaminfo"
)

// A fleet of origins (issue #21): the stream list of a PoP node comes
// from every origin of the fleet, and GET /api/origins says what the
// fleet's directory knows of them.

// Fleet is the fleet of origins as GET /api/origins describes it.
type Fleet struct {
	// Current says that the node's view of the directory follows etcd;
	// while it is false the node answers from what it last knew.
	Current bool `json:"current"`
	// Origins are the origins alive (their lease holds), by ID.
	Origins []FleetOrigin `json:"origins"`
}

// FleetOrigin is an origin of a fleet, as the directory lists it.
type FleetOrigin struct {
	ID   string `json:"id"`
	Zone string `json:"zone,omitempty"`
	// URL is the HTTP base URL PoPs fetch from.
	URL string `json:"url"`
	// Streams counts the streams the directory lists on the origin, any
	// role; Primaries, those where it is the primary.
	Streams   int `json:"streams"`
	Primaries int `json:"primaries"`
	// What the origin reports of its load: streams ingested, their bit
	// rate, the CPU its transcoders use (cores); and Score, its load as
	// placement weighs it, in typical streams.
	IngestStreams int       `json:"ingest_streams"`
	IngestBPS     float64   `json:"ingest_bps"`
	TranscodeCPU  float64   `json:"transcode_cpu"`
	Score         float64   `json:"score"`
	Updated       time.Time `json:"updated"`
}

// serveOrigins answers GET /api/origins.
func (s *Server) serveOrigins(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Fleet == nil {
		http.Error(w, "no fleet of origins: this node has no directory (-etcd)", http.StatusNotFound)
		return
	}
	f := s.cfg.Fleet()
	if f.Origins == nil {
		f.Origins = []FleetOrigin{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(f)
}

// FleetStreams returns a Config.Streams that asks every origin of a
// fleet (origins returns their base URLs) for its /api/streams, at once,
// and merges the lists: a stream's Fleet lists every origin serving it,
// by role (primary, backup, standby: the order PoPs fetch in), and the
// first of them live describes it. Origins that do not answer are left out; when none
// does, or the fleet has none, the list is fallback's.
func FleetStreams(client *http.Client, origins func() []string, fallback func(context.Context) ([]streaminfo.Stream, error)) func(context.Context) ([]streaminfo.Stream, error) {
	return func(ctx context.Context) ([]streaminfo.Stream, error) {
		urls := origins()
		if len(urls) == 0 {
			return fallback(ctx)
		}
		lists := make([][]streaminfo.Stream, len(urls))
		errs := make([]error, len(urls))
		var wg sync.WaitGroup
		for i, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lists[i], errs[i] = RemoteStreams(client, u)(ctx)
			}()
		}
		wg.Wait()
		answered := 0
		for _, err := range errs {
			if err == nil {
				answered++
			}
		}
		if answered == 0 {
			list, err := fallback(ctx)
			if err != nil {
				return nil, fmt.Errorf("no origin of the fleet answered (%w), nor the fallback: %w", errors.Join(errs...), err)
			}
			return list, nil
		}
		return mergeStreams(lists), nil
	}
}

// roleRank orders placements: the origin PoPs fetch from first.
func roleRank(role string) int {
	switch role {
	case "primary":
		return 0
	case "backup":
		return 1
	default:
		return 2
	}
}

// mergeStreams merges the stream lists of the origins of a fleet (see
// FleetStreams), by name.
func mergeStreams(lists [][]streaminfo.Stream) []streaminfo.Stream {
	type entry struct {
		st streaminfo.Stream
		p  streaminfo.Placement // st's own, zero for none
	}
	byName := map[string][]entry{}
	for _, list := range lists {
		for _, st := range list {
			e := entry{st: st}
			if len(st.Fleet) > 0 {
				e.p = st.Fleet[0]
			}
			byName[st.Name] = append(byName[st.Name], e)
		}
	}
	out := make([]streaminfo.Stream, 0, len(byName))
	for _, es := range byName {
		slices.SortFunc(es, func(a, b entry) int {
			return cmp.Or(cmp.Compare(roleRank(a.p.Role), roleRank(b.p.Role)), cmp.Compare(a.p.Origin, b.p.Origin))
		})
		st := es[0].st
		for _, e := range es { // the first live description
			if e.st.Live {
				st = e.st
				break
			}
		}
		st.Fleet = nil
		for _, e := range es {
			if e.p.Origin != "" {
				st.Fleet = append(st.Fleet, e.p)
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b streaminfo.Stream) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

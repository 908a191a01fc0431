package origin

// The APIs of the archive (issue #24): GET /api/vods lists the archived
// epochs a player may watch on demand; POST /api/clips cuts a clip,
// GET /api/clips lists them, DELETE /api/clips/{id} deletes one.

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mediatime"
)

// VODInfo is one archived epoch as GET /api/vods describes it.
type VODInfo struct {
	Stream string `json:"stream"`
	Epoch  string `json:"epoch"`
	// Start is when the epoch began (its timeline zero), End when it
	// ended, RFC 3339; End is empty for an epoch whose end was never
	// recorded (its origin stopped without ending it).
	Start string `json:"start"`
	End   string `json:"end,omitempty"`
	Ended bool   `json:"ended"`
	// Offset is where the VOD's media begins on the epoch's timeline,
	// Duration how long it lasts, in seconds.
	Offset     float64        `json:"offset"`
	Duration   float64        `json:"duration"`
	Renditions []VODRendition `json:"renditions"`
	// HLS and DASH are the VOD's entry manifests.
	HLS  string `json:"hls"`
	DASH string `json:"dash"`
	// Encrypted reports a VOD of an encrypted stream (issue #25); License
	// is then the ClearKey license URL to give its players: the stream's
	// key delivery, which answers only viewers who may watch it.
	Encrypted bool   `json:"encrypted,omitempty"`
	License   string `json:"license,omitempty"`
}

// VODRendition is one rendition of a VOD.
type VODRendition struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"` // "video" or "audio"
	Codec      string  `json:"codec"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FrameRate  float64 `json:"frame_rate,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	// Bandwidth is the average bit rate over the VOD, bits per second.
	Bandwidth int `json:"bandwidth"`
	Segments  int `json:"segments"`
}

// ClipInfo is a clip as POST and GET /api/clips describe it.
type ClipInfo struct {
	ID     string `json:"id"`
	Stream string `json:"stream"`
	Epoch  string `json:"epoch"`
	// From and To are the numbers of its first and last segments of its
	// reference rendition (its first video rendition, v0).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Start and Duration place it on its epoch's timeline, in seconds.
	Start    float64 `json:"start"`
	Duration float64 `json:"duration"`
	Created  string  `json:"created"`
	HLS      string  `json:"hls"`
	DASH     string  `json:"dash"`
}

// maxVODs bounds the VODs one GET /api/vods lists; ?limit= lowers it.
const maxVODs = 100

// serveVODList answers GET /api/vods[?stream=NAME][&limit=N]: the
// archived epochs not live here, newest first; without a stream named,
// those of private streams only with the API token (listable).
func (s *Server) serveVODList(w http.ResponseWriter, r *http.Request) {
	if s.vod == nil {
		s.notFound(w, "api", "no archive")
		return
	}
	q := r.URL.Query()
	limit := maxVODs
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "limit: want a positive number")
			return
		}
		limit = min(n, maxVODs)
	}
	ctx := r.Context()
	var epochs []archive.EpochInfo
	var err error
	named := q.Get("stream")
	if named != "" {
		if !layout.ValidStream(named) {
			apiError(w, http.StatusBadRequest, "stream: not a stream name")
			return
		}
		epochs, err = s.vod.reader.Epochs(ctx, named)
	} else {
		epochs, err = s.vod.reader.AllEpochs(ctx)
	}
	if err != nil {
		s.archiveFailed(w, r, err)
		return
	}
	epochs = slices.DeleteFunc(epochs, func(e archive.EpochInfo) bool {
		st := s.instance(e.Meta.Stream, e.Meta.Epoch)
		return !e.HasMeta || e.Meta.Deleting || st != nil && !st.snap.Load().ended ||
			named == "" && !s.listable(r, e.Meta.Stream)
	})
	// Newest first: epochs are base-36 milliseconds.
	slices.SortFunc(epochs, func(a, b archive.EpochInfo) int {
		return cmp.Or(cmp.Compare(len(b.Meta.Epoch), len(a.Meta.Epoch)), strings.Compare(b.Meta.Epoch, a.Meta.Epoch))
	})
	out := []VODInfo{}
	for _, e := range epochs {
		if len(out) == limit {
			break
		}
		v, err := s.vod.epoch(ctx, e.Meta.Stream, e.Meta.Epoch)
		if errors.Is(err, errNoVOD) {
			continue
		}
		if err != nil {
			s.archiveFailed(w, r, err)
			return
		}
		out = append(out, v.info())
	}
	writeJSON(w, http.StatusOK, struct {
		VODs []VODInfo `json:"vods"`
	}{out})
}

// info describes the VOD of an epoch.
func (v *vod) info() VODInfo {
	m, p := v.meta, v.pres
	base := layout.VODPrefix + m.Stream + "/" + m.Epoch + "/"
	vi := VODInfo{
		Stream: m.Stream, Epoch: m.Epoch, Start: m.Start.UTC().Format(archive.WallFormat), Ended: m.Ended,
		Offset: p.origin().Seconds(), Duration: (p.end() - p.origin()).Seconds(),
		HLS: base + "index.m3u8", DASH: base + "manifest.mpd",
	}
	if m.Ended {
		vi.End = m.End.UTC().Format(archive.WallFormat)
	}
	if p.keys != nil {
		vi.Encrypted, vi.License = true, layout.Prefix+m.Stream+"/"+layout.LicenseFile
	}
	for _, r := range p.renditions {
		_, avg := bandwidth(r.segs, r.timescale)
		vr := VODRendition{ID: r.id, Type: kindOf(r.id), Codec: r.codec, Bandwidth: avg, Segments: len(r.segs)}
		if r.video {
			vr.Width, vr.Height, vr.FrameRate = r.width, r.height, r.fps
		} else {
			vr.SampleRate, vr.Channels = r.sample, r.channels
		}
		vi.Renditions = append(vi.Renditions, vr)
	}
	return vi
}

// clipRequest is the body of POST /api/clips. From and To are each a
// wall-clock time (an RFC 3339 string) or a media time (a number of
// seconds on the epoch's timeline, from its start). Epoch is optional:
// without it, a wall-clock From picks the stream's epoch that was live
// then, a media time the stream's live epoch, else its newest archived.
type clipRequest struct {
	Stream string          `json:"stream"`
	Epoch  string          `json:"epoch"`
	From   json.RawMessage `json:"from"`
	To     json.RawMessage `json:"to"`
}

// clipTime is a From or To of a clipRequest.
type clipTime struct {
	wall  time.Time     // a wall-clock time, or zero
	media time.Duration // a media time, when wall is zero
}

// parseClipTime reads a From or To.
func parseClipTime(raw json.RawMessage) (clipTime, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return clipTime{}, fmt.Errorf("want an RFC 3339 time: %w", err)
		}
		return clipTime{wall: t}, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil || secs < 0 || secs > 1e9 {
		return clipTime{}, errors.New("want an RFC 3339 time or seconds of media time")
	}
	return clipTime{media: time.Duration(secs * float64(time.Second))}, nil
}

// on returns t as a media time of the epoch whose timeline zero is ast.
func (t clipTime) on(ast time.Time) time.Duration {
	if t.wall.IsZero() {
		return t.media
	}
	return t.wall.Sub(ast)
}

// serveClipCreate answers POST /api/clips: a clip of the segments of
// an epoch, live or archived, that overlap the span asked for, cut at
// their boundaries, stored in the archive (which pins its epoch).
func (s *Server) serveClipCreate(w http.ResponseWriter, r *http.Request) {
	if s.vod == nil {
		s.notFound(w, "api", "no archive")
		return
	}
	var req clipRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "body: want JSON {\"stream\", \"from\", \"to\"}")
		return
	}
	from, err := parseClipTime(req.From)
	if err != nil {
		apiError(w, http.StatusBadRequest, "from: "+err.Error())
		return
	}
	to, err := parseClipTime(req.To)
	if err != nil {
		apiError(w, http.StatusBadRequest, "to: "+err.Error())
		return
	}
	if !layout.ValidStream(req.Stream) || req.Epoch != "" && !layout.ValidEpoch(req.Epoch) {
		apiError(w, http.StatusBadRequest, "stream or epoch: not a name")
		return
	}
	ctx := r.Context()
	epoch, ast, err := s.clipEpoch(ctx, req.Stream, req.Epoch, from)
	if err != nil {
		s.clipFailed(w, r, err)
		return
	}
	f, t := from.on(ast), to.on(ast)
	if t <= f {
		apiError(w, http.StatusBadRequest, "to must be after from")
		return
	}
	ref, err := s.clipSegments(ctx, req.Stream, epoch)
	if err != nil {
		s.clipFailed(w, r, err)
		return
	}
	first, last := -1, -1
	for i, sg := range ref.segs {
		if mediatime.Duration(sg.end(), ref.timescale) > f && mediatime.Duration(sg.start, ref.timescale) < t {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		apiError(w, http.StatusUnprocessableEntity, "no segment of the epoch in that span")
		return
	}
	c := archive.Clip{ID: newClipID(), Stream: req.Stream, Epoch: epoch, From: ref.segs[first].number, To: ref.segs[last].number}
	if err := archive.PutClip(ctx, s.vod.store, c); err != nil {
		s.clipFailed(w, r, err)
		return
	}
	s.vod.clipsCreated.Inc()
	ci := clipInfo(c)
	ci.Start = mediatime.Duration(ref.segs[first].start, ref.timescale).Seconds()
	ci.Duration = mediatime.Duration(ref.segs[last].end()-ref.segs[first].start, ref.timescale).Seconds()
	ci.Created = time.Now().UTC().Format(archive.WallFormat)
	w.Header().Set("Location", ci.HLS)
	writeJSON(w, http.StatusCreated, ci)
}

// clipEpoch finds the epoch of stream a clip starting at from is cut
// from (see clipRequest), and its timeline zero.
func (s *Server) clipEpoch(ctx context.Context, stream, epoch string, from clipTime) (string, time.Time, error) {
	if epoch != "" {
		if st := s.instance(stream, epoch); st != nil {
			return epoch, st.ast, nil
		}
		m, err := s.vod.reader.Meta(ctx, stream, epoch)
		if err != nil {
			return "", time.Time{}, err
		}
		return epoch, m.Start, nil
	}
	if st := s.stream(stream); st != nil && (from.wall.IsZero() || !from.wall.Before(st.ast)) {
		return st.epoch, st.ast, nil
	}
	epochs, err := s.vod.reader.Epochs(ctx, stream)
	if err != nil {
		return "", time.Time{}, err
	}
	for i := len(epochs) - 1; i >= 0; i-- { // newest first
		m := epochs[i].Meta
		if epochs[i].HasMeta && !m.Deleting && (from.wall.IsZero() || !from.wall.Before(m.Start)) {
			return m.Epoch, m.Start, nil
		}
	}
	return "", time.Time{}, fmt.Errorf("%w: no epoch of %s then", errNoVOD, stream)
}

// clipSegments returns the segments of the reference rendition of an
// epoch (clipReference): those archived, and those in memory after them.
func (s *Server) clipSegments(ctx context.Context, stream, epoch string) (*presRendition, error) {
	var rs []*presRendition
	v, err := s.vod.epoch(ctx, stream, epoch)
	switch {
	case err == nil:
		rs = v.pres.renditions
	case !errors.Is(err, errNoVOD):
		return nil, err
	}
	if st := s.instance(stream, epoch); st != nil {
		// The segments not archived yet, by rendition.
		sn := st.snap.Load()
		mem := make([]*presRendition, 0, len(sn.renditions))
		for _, r := range sn.renditions {
			pr := &presRendition{id: r.id, video: r.info.Video, timescale: r.info.Timescale}
			if i := slices.IndexFunc(rs, func(a *presRendition) bool { return a.id == r.id }); i >= 0 {
				pr.segs = slices.Clone(rs[i].segs)
			}
			for _, e := range r.entries {
				if n := len(pr.segs); n == 0 || e.seg.Number > pr.segs[n-1].number {
					pr.segs = append(pr.segs, presSegment{number: e.seg.Number, start: e.seg.Start, duration: e.seg.Duration})
				}
			}
			mem = append(mem, pr)
		}
		slices.SortFunc(mem, func(a, b *presRendition) int { return compareRenditions(a.id, b.id) })
		rs = mem
	}
	ref := clipReference(rs)
	if ref == nil || len(ref.segs) == 0 {
		return nil, fmt.Errorf("%w: epoch %s of %s has no segments", errNoVOD, epoch, stream)
	}
	return ref, nil
}

// clipFailed answers a clip request that failed with err.
func (s *Server) clipFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNoVOD), errors.Is(err, archive.ErrEpochGone), errors.Is(err, store.ErrNotFound):
		apiError(w, http.StatusNotFound, "no such epoch in the archive")
	case errors.Is(err, archive.ErrInvalid):
		apiError(w, http.StatusBadRequest, err.Error())
	default:
		s.archiveFailed(w, r, err)
	}
}

// serveClipList answers GET /api/clips: every clip, by id; those of
// private streams only with the API token (listable).
func (s *Server) serveClipList(w http.ResponseWriter, r *http.Request) {
	if s.vod == nil {
		s.notFound(w, "api", "no archive")
		return
	}
	clips, err := archive.Clips(r.Context(), s.vod.store)
	if err != nil {
		s.archiveFailed(w, r, err)
		return
	}
	out := make([]ClipInfo, 0, len(clips))
	for _, c := range clips {
		if s.listable(r, c.Stream) {
			out = append(out, clipInfo(c))
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Clips []ClipInfo `json:"clips"`
	}{out})
}

// serveClipDelete answers DELETE /api/clips/{id}: the clip goes, and
// with it its pin on its epoch.
func (s *Server) serveClipDelete(w http.ResponseWriter, r *http.Request) {
	if s.vod == nil {
		s.notFound(w, "api", "no archive")
		return
	}
	id := r.PathValue("id")
	if !layout.ValidStream(id) {
		apiError(w, http.StatusBadRequest, "not a clip id")
		return
	}
	if err := archive.DeleteClip(r.Context(), s.vod.store, id); err != nil {
		s.archiveFailed(w, r, err)
		return
	}
	s.vod.forget("c/" + id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// clipInfo describes c as its record has it.
func clipInfo(c archive.Clip) ClipInfo {
	base := layout.VODPrefix + c.Stream + "/" + layout.ClipsDir + "/" + c.ID + "/"
	return ClipInfo{
		ID: c.ID, Stream: c.Stream, Epoch: c.Epoch, From: c.From, To: c.To,
		Created: c.Created.UTC().Format(archive.WallFormat),
		HLS:     base + "index.m3u8", DASH: base + "manifest.mpd",
	}
}

// newClipID returns a random clip id: 12 characters of base 32.
func newClipID() string {
	const digits = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = digits[b[i]&31]
	}
	return string(b)
}

// archiveFailed answers a request the archive could not serve: 503.
func (s *Server) archiveFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left
	}
	s.log.Warn("archive unavailable", "path", r.URL.Path, "error", err)
	apiError(w, http.StatusServiceUnavailable, "archive unavailable")
}

// apiError answers an API request with status and a JSON error.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// writeJSON answers with v as JSON, uncached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

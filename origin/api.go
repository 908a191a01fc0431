package origin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/golivestream/live/internal/streaminfo"
)

// StreamInfo is one stream as GET /api/streams describes it.
type StreamInfo = streaminfo.Stream

// RenditionInfo is one rendition of a stream, measured over its window.
type RenditionInfo = streaminfo.Rendition

// Streams describes every stream the origin holds, live or lingering,
// with its place in the fleet when the origin is one of a fleet's.
func (s *Server) Streams() []StreamInfo {
	now := time.Now()
	var out []StreamInfo
	for _, st := range s.list() {
		si := st.info(now)
		si.Private = s.cfg.Access != nil && s.cfg.Access(st.name).Private
		if s.cfg.Directory != nil {
			if p, ok := s.cfg.Directory.Placement(st.name); ok {
				p.Epoch = st.epoch
				si.Fleet = []streaminfo.Placement{p}
			}
		}
		out = append(out, si)
	}
	return out
}

// info describes st as of now.
func (st *stream) info(now time.Time) StreamInfo {
	st.mu.Lock()
	started := st.sessionStart
	sn := st.snap.Load()
	waiting := st.session == nil && !sn.ended
	st.mu.Unlock()
	si := StreamInfo{
		Name:         st.name,
		Live:         !sn.ended,
		Reconnecting: waiting,
		Started:      started.UTC().Format(time.RFC3339Nano),
		HLS:          "/live/" + st.name + "/index.m3u8",
		DASH:         "/live/" + st.name + "/manifest.mpd",
		Encrypted:    st.keys != nil,
		Renditions:   []RenditionInfo{},
	}
	if !sn.ended {
		si.Uptime = now.Sub(started).Seconds()
	}
	for _, r := range sn.renditions {
		ms := measure(r)
		ri := RenditionInfo{
			ID: r.id, Type: kindOf(r.id), Codec: r.info.Codec,
			Bitrate: ms.average, PeakRate: ms.peak, Segments: ms.segments,
		}
		if !sn.ended {
			recent := measureRecent(r)
			ri.RecentFPS, ri.RecentBitrate = recent.fps, recent.average
		}
		if r.info.Video {
			ri.Width, ri.Height, ri.FPS = r.info.Width, r.info.Height, ms.fps
		} else {
			ri.SampleRate, ri.Channels = r.info.SampleRate, r.info.Channels
		}
		if n := len(r.entries); n > 0 {
			last := r.entries[n-1].seg.Number
			ri.LastNumber = &last
		}
		si.Renditions = append(si.Renditions, ri)
	}
	return si
}

func (s *Server) serveStreams(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	streams := s.Streams()
	if streams == nil {
		streams = []StreamInfo{}
	}
	json.NewEncoder(w).Encode(struct {
		Streams []StreamInfo `json:"streams"`
	}{streams})
}

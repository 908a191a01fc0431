// Package streaminfo is what an origin's GET /api/streams says of its
// streams: the JSON its producer (origin) and its readers (the watch page
// and dashboard of package web, on any PoP node) share.
package streaminfo

// Stream is one stream as GET /api/streams describes it.
type Stream struct {
	Name string `json:"name"`
	Live bool   `json:"live"`
	// Reconnecting is set while a live stream waits for its lost
	// publisher (origin.Config.ReconnectWindow).
	Reconnecting bool    `json:"reconnecting,omitempty"`
	Started      string  `json:"started"` // RFC 3339, when the current publisher started
	Uptime       float64 `json:"uptime_seconds"`
	// HLS and DASH are the manifest paths, relative to the server root.
	HLS  string `json:"hls"`
	DASH string `json:"dash"`
	// Encrypted is set for a stream encrypted with cbcs (issue #25): its
	// players need EME ClearKey, with the license URL "license" beside
	// the manifests.
	Encrypted  bool        `json:"encrypted,omitempty"`
	Renditions []Rendition `json:"renditions"`
}

// Rendition is one rendition of a stream, measured over its window.
type Rendition struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"` // "video" or "audio"
	Codec      string  `json:"codec"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	FPS        float64 `json:"fps,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	Bitrate    int     `json:"bitrate"`      // average bits per second
	PeakRate   int     `json:"peak_bitrate"` // highest segment bits per second
	Segments   int     `json:"segments"`     // listed in the playlists
	LastNumber *uint64 `json:"last_segment,omitempty"`
	// RecentFPS and RecentBitrate are measured over the last 3 segments:
	// what ingest brings now. Zero while a stream has ended.
	RecentFPS     float64 `json:"recent_fps,omitempty"`
	RecentBitrate int     `json:"recent_bitrate,omitempty"`
}

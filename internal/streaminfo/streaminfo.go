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
	Encrypted bool `json:"encrypted,omitempty"`
	// Private is set for a stream whose players need a signed playback
	// token (origin.Access): the watch page's and dashboard's list leave
	// it out; a viewer who names it is still told about it.
	Private    bool        `json:"private,omitempty"`
	Renditions []Rendition `json:"renditions"`
	// Fleet says where the stream lives in a fleet of origins (issue
	// #21): the origins serving it, the one PoPs fetch from first. An
	// origin lists itself; a PoP node's list, from every origin of the
	// fleet, lists them all. Nil outside a fleet.
	Fleet []Placement `json:"fleet,omitempty"`
}

// Placement is an origin of a fleet serving a stream.
type Placement struct {
	// Origin is the origin's ID in the fleet's directory; Zone, its
	// failure zone.
	Origin string `json:"origin"`
	Zone   string `json:"zone,omitempty"`
	// Role is what the origin is for the stream: "primary" (it made the
	// stream's epoch), "backup" (it adopted it: its files are the
	// primary's, byte for byte) or "standby" (it came too late to adopt
	// it, and serves an epoch of its own, taken when no origin of the
	// stream's epoch is left).
	Role string `json:"role"`
	// Epoch is the stream's instance on the origin.
	Epoch string `json:"epoch"`
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

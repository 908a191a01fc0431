package origin

// How the manifests of an encrypted instance say which key each segment
// needs (issue #25). Both are functions of the snapshot: the key of a
// period is recorded (streamKeys) before any of its segments is listed.
//
// HLS (RFC 8216bis 4.4.4.4): EXT-X-KEY METHOD=SAMPLE-AES before the first
// segment of each key period, and at the top for the first listed one
// (gohlslib writes a segment's Key when it differs from the previous
// one's), in the delta updates too, and before the parts of the segment
// being produced when it begins a new period. The tag is the ClearKey one
// (KEYFORMAT "org.w3.clearkey", KEYID, URI ../../keys/{kid}, distinct per
// key as hls.js wants), plus the DRM systems of a CPIX key server; no
// "identity" tag, which hls.js takes for its own decryption of MPEG-TS and
// fails on (protection.HLSKeyTags).
//
// DASH: one Period per key period (protectedPeriods). dash.js 5.2 opens
// license sessions only for the KIDs the MPD names, so a key change
// signalled in the media only stalls it; a new Period with the new key as
// its cenc:default_KID makes it ask for the new key, and Shaka Player
// too. The Periods of one instance share its files and timeline: a later
// one begins at its key period's boundary, with that much
// presentationTimeOffset.

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/mediatime"
	"github.com/golivestream/live/protection"
)

// keyURIPrefix is where a media playlist's key URIs lead, relative to
// it: /live/{stream}/keys/, two directories up from
// /live/{stream}/{epoch}/{rendition}/.
const keyURIPrefix = "../../" + layout.KeysDir + "/"

// hlsKeys writes the EXT-X-KEY tags of the media playlists of encrypted
// instances, live or not (presMediaPlaylist).
type hlsKeys struct {
	// uriPrefix is where the key URIs lead, relative to the playlist:
	// the stream's /live/{stream}/keys/, where key delivery is.
	uriPrefix string
	// systems signals the DRM systems of a key server besides ClearKey.
	systems bool
}

// tag returns the EXT-X-KEY gohlslib writes before the first segment of
// key kid: the first line of the key's tags, which expand completes.
func (h hlsKeys) tag(kid protection.KID) *playlist.MediaKey {
	return &playlist.MediaKey{Method: playlist.MediaKeyMethodSampleAES, URI: h.uriPrefix + kid.Hex()}
}

// expand replaces each EXT-X-KEY line of playlist b that tag made with
// the key's tags (protection.HLSKeyTags), finding keys with find; and,
// when partKey is not nil, puts its tags before the parts that follow
// the last segment: those of the segment being produced, which begins a
// new key period.
func (h hlsKeys) expand(b []byte, find func(hex string) (protection.Key, bool), partKey *protection.Key) []byte {
	linePrefix := `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="` + h.uriPrefix
	lastURI := -1 // offset of the last segment's URI line
	for off, line := 0, []byte(nil); off < len(b); off += len(line) {
		line = b[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if len(bytes.TrimSpace(line)) > 0 && line[0] != '#' {
			lastURI = off
		}
	}
	var out bytes.Buffer
	out.Grow(len(b) + 512)
	off := 0
	for line := range bytes.Lines(b) {
		s := string(bytes.TrimRight(line, "\r\n"))
		switch {
		case strings.HasPrefix(s, linePrefix):
			hex, _, _ := strings.Cut(s[len(linePrefix):], `"`)
			if k, ok := find(hex); ok {
				h.write(&out, k)
				off += len(line)
				continue
			}
		case partKey != nil && off > lastURI && (strings.HasPrefix(s, "#EXT-X-PART:") || strings.HasPrefix(s, "#EXT-X-PRELOAD-HINT:")):
			h.write(&out, *partKey)
			partKey = nil
		}
		out.Write(line)
		off += len(line)
	}
	return out.Bytes()
}

// write writes the EXT-X-KEY tags of k to out.
func (h hlsKeys) write(out *bytes.Buffer, k protection.Key) {
	uri := h.uriPrefix + k.KID.Hex()
	tags, err := protection.HLSKeyTags(k, protection.HLSKeys{ClearKeyURI: uri, Systems: h.systems})
	if err != nil {
		// Only a key server's URI with a quote can get here: the
		// ClearKey tag alone.
		tags, _ = protection.HLSKeyTags(k, protection.HLSKeys{ClearKeyURI: uri})
	}
	for _, t := range tags {
		out.WriteString(t)
		out.WriteByte('\n')
	}
}

// hls returns how the live media playlists of the instance write their
// key tags.
func (sk *streamKeys) hls() hlsKeys {
	return hlsKeys{uriPrefix: keyURIPrefix, systems: sk.prot.cfg.Systems}
}

// periodOf returns the key period of a segment or part starting at start
// ticks of timescale ts.
func (sk *streamKeys) periodOf(start int64, ts uint32) uint64 {
	return keyPeriodOf(start, ts, sk.prot.cfg.KeyPeriod, sk.prot.segment)
}

// hlsKey returns the EXT-X-KEY gohlslib writes before a segment starting
// at start ticks of timescale ts (hlsKeys.tag). Nil for a clear instance
// (sk nil).
func (sk *streamKeys) hlsKey(start int64, ts uint32) *playlist.MediaKey {
	if sk == nil {
		return nil
	}
	k, ok := sk.known(sk.periodOf(start, ts))
	if !ok {
		return nil // cannot be: recorded before the segment was listed
	}
	return sk.hls().tag(k.KID)
}

// byHex returns the key of the instance whose KID is hex.
func (sk *streamKeys) byHex(hex string) (protection.Key, bool) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return keyByHex(sk.keys, hex)
}

// keyByHex returns the key of keys whose KID is hex.
func keyByHex(keys map[uint64]protection.Key, hex string) (protection.Key, bool) {
	for _, k := range keys {
		if k.KID.Hex() == hex {
			return k, true
		}
	}
	return protection.Key{}, false
}

// protectHLS completes the key tags of b, the media playlist of rendition
// r of the encrypted instance whose keys are sk, listing listed; b itself
// for a clear instance.
func (sk *streamKeys) protectHLS(b []byte, r *rendition, listed []*entry) []byte {
	if sk == nil {
		return b
	}
	var partKey *protection.Key
	if len(r.parts) > 0 && len(listed) > 0 {
		ts := r.info.Timescale
		last := listed[len(listed)-1].seg
		if n := sk.periodOf(r.parts[0].start, ts); n != sk.periodOf(last.Start, ts) {
			if k, ok := sk.known(n); ok {
				partKey = &k
			}
		}
	}
	return sk.hls().expand(b, sk.byHex, partKey)
}

// presKeys returns the keys of the instance as its DVR window's
// manifests name them (presKeys).
func (sk *streamKeys) presKeys() *presKeys {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return &presKeys{
		keyPeriod: sk.prot.cfg.KeyPeriod, segment: sk.prot.segment,
		byPeriod: maps.Clone(sk.keys), systems: sk.prot.cfg.Systems,
	}
}

// protectPeriod gives each AdaptationSet of period, whose segments are
// those of one key period, the ContentProtection elements of its key k:
// the cenc descriptor with k as cenc:default_KID, ClearKey (DASH-IF's
// system ID, which dash.js and Shaka Player both take) without a license
// URL, which players are given under the viewer's token path, and, with
// systems, the DRM systems of a CPIX key server.
func protectPeriod(period *mpd.Period, k protection.Key, systems bool) {
	for _, as := range period.AdaptationSets {
		cps, err := protection.DASHContentProtection(k, protection.DASHKeys{ClearKey: true, Systems: systems})
		if err != nil {
			continue // cannot be: no license URL to check
		}
		as.ContentProtections = cps
	}
}

// periodsOf describes instance v as its Periods: one, named by its epoch,
// for a clear instance (buildPeriod); one per key period with listed
// segments for an encrypted one (protectedPeriods). It also returns the
// longest segment listed.
func periodsOf(v view) ([]*mpd.Period, time.Duration) {
	if v.keys == nil {
		period, d := buildPeriod(v)
		if period == nil {
			return nil, 0
		}
		return []*mpd.Period{period}, d
	}
	return protectedPeriods(v)
}

// protectedPeriods describes the encrypted instance v as one Period per
// key period that has listed segments, each with the ContentProtection of
// its key. The first key period's Period is named by the epoch, as a
// clear instance's, and begins where it does; period n's is named
// "{epoch}-{n}" and begins n key periods later on the instance's
// timeline, its SegmentTemplates offset by as much
// (@presentationTimeOffset) and its ProducerReferenceTime placed there.
func protectedPeriods(v view) ([]*mpd.Period, time.Duration) {
	sk := v.keys
	var numbers []uint64
	for _, r := range v.snap.renditions {
		for _, e := range r.listed() {
			if n := sk.periodOf(e.seg.Start, e.seg.Timescale); !slices.Contains(numbers, n) {
				numbers = append(numbers, n)
			}
		}
	}
	slices.Sort(numbers)
	var out []*mpd.Period
	var maxSeg time.Duration
	for _, n := range numbers {
		k, ok := sk.known(n)
		if !ok {
			continue // cannot be: recorded before its segments were listed
		}
		sub := &snapshot{ended: v.snap.ended}
		for _, r := range v.snap.renditions {
			c := *r
			c.entries = slices.DeleteFunc(slices.Clone(r.listed()), func(e *entry) bool {
				return sk.periodOf(e.seg.Start, e.seg.Timescale) != n
			})
			sub.renditions = append(sub.renditions, &c)
		}
		period, d := buildPeriod(view{v.instance, sub})
		if period == nil {
			continue
		}
		maxSeg = max(maxSeg, d)
		shift := time.Duration(n) * sk.prot.cfg.KeyPeriod
		if n > 0 {
			period.Id = v.epoch + "-" + strconv.FormatUint(n, 10)
			period.Start = durPtr(v.start + shift)
		}
		protectPeriod(period, k, sk.prot.cfg.Systems)
		for _, as := range period.AdaptationSets {
			var ts uint32
			for _, rep := range as.Representations {
				tpl := rep.SegmentTemplate
				ts = *tpl.Timescale
				pto := uint64(mediatime.Ticks(shift, ts))
				tpl.PresentationTimeOffset = &pto
			}
			for _, prt := range as.ProducerReferenceTimes {
				// The same mapping of media time to the wall clock, at
				// the Period's start: unique per Period (prtID).
				prt.Id = uint32((v.start + shift).Milliseconds())
				prt.PresentationTime = uint64(mediatime.Ticks(shift, ts))
				prt.WallClockTime = v.ast.Add(shift).UTC().Format(mpdTimeFormat)
			}
		}
		out = append(out, period)
	}
	return out, maxSeg
}

// bridgeKey is the EXT-X-KEY of entry e of instance in, in a bridged
// playlist (playlist_bridge.go) whose previous segment was encrypted
// (afterKey): its key, METHOD=NONE for a clear instance after an
// encrypted one, else none.
func bridgeKey(in *instance, e *entry, afterKey bool) *playlist.MediaKey {
	if in.keys == nil {
		if afterKey {
			return &playlist.MediaKey{Method: playlist.MediaKeyMethodNone}
		}
		return nil
	}
	return in.keys.hlsKey(e.seg.Start, e.seg.Timescale)
}

// bridgeKeys completes the key tags of b, a bridged playlist across
// links, with the keys of their instances.
func bridgeKeys(b []byte, links []bridgeLink) []byte {
	var systems, any bool
	for _, l := range links {
		if l.in.keys != nil {
			any, systems = true, systems || l.in.keys.prot.cfg.Systems
		}
	}
	if !any {
		return b
	}
	find := func(hex string) (protection.Key, bool) {
		for _, l := range links {
			if l.in.keys != nil {
				if k, ok := l.in.keys.byHex(hex); ok {
					return k, true
				}
			}
		}
		return protection.Key{}, false
	}
	return hlsKeys{uriPrefix: keyURIPrefix, systems: systems}.expand(b, find, nil)
}

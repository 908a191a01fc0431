package pop

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fleetDir is a Directory of one stream.
type fleetDir struct{ primary, backup string }

func (d fleetDir) Origins(stream string) (string, string, bool) {
	if stream != "s" {
		return "", "", false
	}
	return d.primary, d.backup, true
}

func (d fleetDir) Some() (string, bool) { return d.backup, d.backup != "" }

// TestFleetPassThrough: what belongs to no stream (/time, the MPDs'
// clock) goes to a live origin of the fleet, not to -origin alone: when
// that one is dead, dash.js would lose its clock.
func TestFleetPassThrough(t *testing.T) {
	down := newStubOrigin(t, nil)
	down.Close()
	live := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "clock of "+r.URL.Path) })
	for _, tc := range []struct {
		name string
		dir  Directory
		code int
	}{
		{"fleet", fleetDir{down.URL, live.URL}, http.StatusOK},
		{"directory without origins", fleetDir{down.URL, ""}, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startPoP(t, Config{Origins: []string{down.URL}, Directory: tc.dir})
			code, body, _ := getStatus(t, newClient(), base+"/time")
			if code != tc.code || code == http.StatusOK && body != "clock of /time" {
				t.Errorf("/time: %d %q, want %d", code, body, tc.code)
			}
		})
	}
}

// rangeOrigin serves body at every path, ranges included, and counts the
// range requests.
func rangeOrigin(t *testing.T, body []byte, ranges *atomic.Int64) *stubOrigin {
	return newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// TestFleetFailover: a fetch whose primary origin fails goes to the
// stream's backup at once, whatever the failure: an error status, a 404
// (an origin restarted while the directory still names it), a refused
// connection, no answer (asked beside it after HedgeAfter). An object
// that neither has is a 404.
func TestFleetFailover(t *testing.T) {
	body := randomBody(100 << 10)
	var ranges atomic.Int64
	backup := rangeOrigin(t, body, &ranges)
	down := newStubOrigin(t, nil)
	down.Close() // refuses connections
	hung := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	failing := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	restarted := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }) // has none of the stream yet
	for _, tc := range []struct {
		name, primary, reason string
	}{
		{"status", failing.URL, "status"},
		{"not found", restarted.URL, "not_found"},
		{"unreachable", down.URL, "unreachable"},
		{"slow", hung.URL, "slow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, base := startPoP(t, Config{Origins: []string{backup.URL}, Directory: fleetDir{tc.primary, backup.URL}, HedgeAfter: 100 * time.Millisecond})
			code, got, _ := getStatus(t, newClient(), base+"/live/s/e/v0/1.m4s")
			if code != 200 || got != string(body) {
				t.Fatalf("%d, %d bytes", code, len(got))
			}
			if n := counterValue(s.metrics.failovers[tc.reason]); n != 1 {
				t.Errorf("live_pop_failovers_total{reason=%s} = %v, want 1", tc.reason, n)
			}
		})
	}
	t.Run("nowhere", func(t *testing.T) {
		_, base := startPoP(t, Config{Origins: []string{restarted.URL}, Directory: fleetDir{restarted.URL, restarted.URL + "/"}})
		if code, _, _ := getStatus(t, newClient(), base+"/live/s/e/v0/2.m4s"); code != http.StatusNotFound {
			t.Errorf("an object neither origin has: %d, want 404", code)
		}
		if n := restarted.count("/live/s/e/v0/2.m4s"); n != 2 {
			t.Errorf("%d requests to the origins, want 2 (both asked)", n)
		}
	})
}

// TestFleetResume: the primary breaks a 250 KB segment in its middle,
// while a thousand requests read it: the fill goes on from the backup,
// and every request gets one complete, correct body. A complete segment
// (its length known) goes on with a Range request for the bytes missing;
// one being packaged (streamed in chunks, its length unknown) is streamed
// again from the backup, as it is packaged, the bytes read skipped: a
// range of it would wait for its end.
func TestFleetResume(t *testing.T) {
	const n = 1000
	body := randomBody(250 << 10)
	for _, tc := range []struct {
		name   string
		length bool
		ranges int64
	}{
		{"complete", true, 1},
		{"being packaged", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ranges atomic.Int64
			backup := rangeOrigin(t, body, &ranges)
			release := make(chan struct{})
			primary := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.length {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				<-release
				// The origin dies mid-body.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			})
			s, base := startPoP(t, Config{Origins: []string{primary.URL}, Directory: fleetDir{primary.URL, backup.URL}})
			headers, bodies, errs := herd(t, newClient(), []string{base}, "/live/s/e/v0/7.m4s", n)
			for range n {
				<-headers // every request reads the fill
			}
			close(release)
			for range n {
				select {
				case b := <-bodies:
					if !bytes.Equal(b, body) {
						t.Fatalf("a body of %d bytes differs from the segment", len(b))
					}
				case err := <-errs:
					t.Fatal(err)
				}
			}
			if got := ranges.Load(); got != tc.ranges {
				t.Errorf("%d range requests to the backup, want %d", got, tc.ranges)
			}
			if v := counterValue(s.metrics.failovers["resume"]); v != 1 {
				t.Errorf("live_pop_failovers_total{reason=resume} = %v, want 1", v)
			}
		})
	}
}

// TestFleetResumeRefusesOtherBytes: a fill that breaks is not continued
// from a backup whose object is another: another length (the origins'
// files diverged), or another ETag (a rendition each origin's encoder
// made on its own, of the same length or being packaged, its length
// unknown). The request fails rather than get a spliced body.
func TestFleetResumeRefusesOtherBytes(t *testing.T) {
	body := randomBody(250 << 10)
	for _, tc := range []struct {
		name           string
		other          []byte // the backup's object
		primaryETag    string
		backupETag     string
		streamed       bool // the primary sends no Content-Length
		wantRangeAsked bool
	}{
		{name: "another length", other: randomBody(200 << 10), wantRangeAsked: true},
		{name: "another ETag", other: randomBody(250 << 10), primaryETag: `"e-v1-7-a"`, backupETag: `"e-v1-7-b"`, wantRangeAsked: true},
		{name: "another ETag, streamed", other: randomBody(250 << 10), primaryETag: `"e-v1-7-a"`, backupETag: `"e-v1-7-b"`, streamed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ranges atomic.Int64
			backup := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "" {
					ranges.Add(1)
				}
				if tc.backupETag != "" {
					w.Header().Set("ETag", tc.backupETag)
				}
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(tc.other))
			})
			primary := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if !tc.streamed {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				if tc.primaryETag != "" {
					w.Header().Set("ETag", tc.primaryETag)
				}
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close() // the origin dies mid-body
				}
			})
			s, base := startPoP(t, Config{Origins: []string{primary.URL}, Directory: fleetDir{primary.URL, backup.URL}})
			resp, err := newClient().Get(base + "/live/s/e/v1/7.m4s")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && len(got) == len(body) {
				t.Fatalf("a complete body of %d bytes, equal to the primary's: %v", len(got), bytes.Equal(got, body))
			}
			if bytes.HasPrefix(got, body[:len(body)/2]) && len(got) > len(body)/2 {
				t.Errorf("%d bytes: the primary's half, then %d bytes of the backup's other object", len(got), len(got)-len(body)/2)
			}
			if asked := ranges.Load() == 1; asked != tc.wantRangeAsked {
				t.Errorf("range asked of the backup: %v, want %v", asked, tc.wantRangeAsked)
			}
			if v := counterValue(s.metrics.failovers["resume"]); v != 1 {
				t.Errorf("live_pop_failovers_total{reason=resume} = %v, want 1", v)
			}
		})
	}
}

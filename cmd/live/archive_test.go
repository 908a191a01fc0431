package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/golivestream/live/archive"
	"github.com/golivestream/live/archive/dirstore"
	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/proctest"
	"github.com/golivestream/live/origin"
)

// TestArchiveAfterKill: cmd/live archiving its demo stream is killed
// (SIGKILL) mid-stream. On the same archive, the index of the epoch is
// whole (each line names an object that is there, of its size), and a
// cmd/live started again lists the epoch as a VOD, not ended, whose
// every rendition has its segments in sequence up to the last written,
// and which ffprobe reads to its end without a gap.
func TestArchiveAfterKill(t *testing.T) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ffprobe is required in CI: %v", err)
		}
		t.Skip("ffprobe not installed (the README's test command installs it)")
	}
	bin := proctest.Build(t, t.TempDir(), ".")
	dir := t.TempDir()
	first := proctest.Start(t, bin, 5, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-archive", dir, "-transcode=false")
	base := strings.TrimSuffix(urlOf(t, first.Stdout, "demo"), "/live/demo/index.m3u8")
	// 10 segments listed live, of which a crash may lose what the
	// archive had queued and not yet committed (up to its CommitDelay,
	// 1 s): the VOD must still hold 7 s.
	deadline := time.Now().Add(30 * time.Second)
	for segments(t, base, "demo") < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the demo stream has no 10 segments; stderr:\n%s", first.Stderr)
		}
		time.Sleep(200 * time.Millisecond) // another process: nothing to await but HTTP
	}
	if err := first.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	st, err := dirstore.New(dirstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, st)

	again := proctest.Start(t, bin, 4, "-rtmp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-archive", dir, "-transcode=false", "-demo=false")
	base = strings.TrimSuffix(urlOf(t, again.Stdout, "watch"), "/")
	var list struct{ VODs []origin.VODInfo }
	if err := json.Unmarshal(get(t, base+"/api/vods"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.VODs) != 1 || list.VODs[0].Stream != "demo" || list.VODs[0].Ended || list.VODs[0].Duration < 7 {
		t.Fatalf("/api/vods after the kill: %+v", list.VODs)
	}
	v := list.VODs[0]
	mvURL, _ := url.Parse(base + v.HLS)
	var mv playlist.Multivariant
	if err := mv.Unmarshal(get(t, mvURL.String())); err != nil {
		t.Fatal(err)
	}
	uris := []string{mv.Variants[0].URI}
	for _, r := range mv.Renditions {
		uris = append(uris, *r.URI)
	}
	for _, u := range uris {
		ref, _ := url.Parse(u)
		pl := mvURL.ResolveReference(ref).String()
		var m playlist.Media
		if err := m.Unmarshal(get(t, pl)); err != nil {
			t.Fatal(err)
		}
		var total time.Duration
		for i, s := range m.Segments {
			if want := strconv.Itoa(m.MediaSequence+i) + ".m4s"; !strings.HasSuffix(s.URI, "/"+want) || s.Discontinuity {
				t.Errorf("%s: segment %d is %s, want %s without a discontinuity", pl, i, s.URI, want)
			}
			total += s.Duration
		}
		out, err := exec.CommandContext(t.Context(), ffprobe, "-v", "error", "-show_entries", "packet=dts_time", "-of", "csv=p=0", pl).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", pl, err, out)
		}
		var dts []float64
		for _, f := range strings.Fields(string(out)) {
			if d, err := strconv.ParseFloat(strings.TrimSuffix(f, ","), 64); err == nil {
				dts = append(dts, d)
			}
		}
		if len(dts) < 2 {
			t.Fatalf("ffprobe read %d packets of %s", len(dts), pl)
		}
		for i := 1; i < len(dts); i++ {
			if gap := dts[i] - dts[i-1]; gap <= 0 || gap > 0.1 {
				t.Errorf("%s: packet %d: dts gap %.3f s", pl, i, gap)
			}
		}
		if span := time.Duration((dts[len(dts)-1] - dts[0]) * float64(time.Second)); span < total-time.Second {
			t.Errorf("%s: ffprobe read %v of the %v listed", pl, span, total)
		}
		t.Logf("%s: %d segments, %v, %d packets read", pl, len(m.Segments), total, len(dts))
	}
}

// checkIndex checks every epoch's index in st: at most a torn last line
// skipped, and every entry's object there with its size.
func checkIndex(t *testing.T, st store.Store) {
	t.Helper()
	r, err := archive.NewReader(archive.ReaderConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	epochs, err := r.AllEpochs(t.Context())
	if err != nil || len(epochs) != 1 {
		t.Fatalf("archived epochs: %v, %v; want one", epochs, err)
	}
	m := epochs[0].Meta
	idx, err := r.Index(t.Context(), m.Stream, m.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Skipped > 1 || len(idx.Entries) < 8 {
		t.Errorf("index of the killed epoch: %d entries, %d lines skipped", len(idx.Entries), idx.Skipped)
	}
	for _, e := range idx.Entries {
		b, err := r.Object(t.Context(), m.Stream, m.Epoch, e, 0, -1)
		if err != nil || int64(len(b)) != e.Size {
			t.Errorf("%s: %d bytes, %v; the index says %d", e.Name(), len(b), err, e.Size)
		}
	}
}

// urlOf returns the URL the command printed on its line name.
func urlOf(t *testing.T, lines []string, name string) string {
	t.Helper()
	for _, l := range lines {
		if n, u, ok := strings.Cut(l, ":"); ok && n == name {
			return strings.TrimSpace(u)
		}
	}
	t.Fatalf("no %s line in %q", name, lines)
	return ""
}

// segments returns how many segments the first rendition of stream lists.
func segments(t *testing.T, base, stream string) int {
	t.Helper()
	var body struct {
		Streams []origin.StreamInfo `json:"streams"`
	}
	if json.Unmarshal(get(t, base+"/api/streams"), &body) != nil {
		return 0
	}
	for _, s := range body.Streams {
		if s.Name == stream && len(s.Renditions) > 0 {
			return s.Renditions[0].Segments
		}
	}
	return 0
}

// get fetches u, failing the test unless it answers 200.
func get(t *testing.T, u string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, b)
	}
	return b
}

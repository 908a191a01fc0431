//go:build linux

package pop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/golivestream/live/internal/fastpath/fastpathtest"
)

// fdOpen reports whether fd is an open descriptor.
func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// TestBodyFile: a body file holds its bytes, and its descriptor is closed
// when it is dropped and no sender holds it, not before.
func TestBodyFile(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10000)
	budget := &fileBudget{}
	budget.left.Store(1)
	f, err := newBodyFile(body, budget)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(body))
	if n, err := unix.Pread(f.fd, got, 0); err != nil || n != len(body) || !bytes.Equal(got, body) {
		t.Fatalf("pread: %d %v, equal %v", n, err, bytes.Equal(got, body))
	}
	if !f.acquire() || !f.acquire() {
		t.Fatal("acquire of a live file failed")
	}
	f.drop()
	if f.acquire() {
		t.Error("acquired a dropped file")
	}
	f.release()
	if !fdOpen(f.fd) {
		t.Fatal("closed while a sender held it")
	}
	f.release()
	if fdOpen(f.fd) {
		t.Error("still open once dropped and released")
	}

	// The budget of descriptors: one file at a time here.
	g, err := newBodyFile(body, budget)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newBodyFile(body, budget); !errors.Is(err, errNoDescriptors) {
		t.Errorf("a second file on a budget of one: %v", err)
	}
	g.drop()
	if fdOpen(g.fd) {
		t.Error("a dropped file nobody held is still open")
	}
	g.drop() // twice is harmless
	if n := budget.left.Load(); n != 1 {
		t.Errorf("budget %d once every file closed, want 1", n)
	}
	if b := newFileBudget(); b.left.Load() < 100 {
		t.Errorf("a budget of %d descriptors from the open-file limit", b.left.Load())
	}
}

// TestFastPathSendfile: a cached segment is sent from its body file on the
// fast path, byte for byte; HEAD and ranges are answered from the heap as
// before; and a response in progress keeps its bytes when the segment
// leaves the cache under it.
func TestFastPathSendfile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := map[string][]byte{}
	for _, n := range []int{300_000, 16 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		bodies["/live/s/e/v0/"+strconv.Itoa(len(bodies))+".m4s"] = b
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	defer origin.Close()
	s, ln := newNode(t, origin.URL)
	hs := &http.Server{Handler: s}
	go s.Serve(hs, ln)
	defer hs.Close()

	admitted := make(chan string, 4)
	prefetch := s.local.cfg.onComplete
	s.local.cfg.onComplete = func(o *object) {
		prefetch(o)
		admitted <- o.key
	}
	const path = "/live/s/e/v0/0.m4s"
	get := "GET " + path + " HTTP/1.1\r\nHost: pop\r\n\r\n"
	fastpathtest.Send(t, ln.Addr().String(), get) // a miss
	<-admitted
	x := fastpathtest.Send(t, ln.Addr().String(),
		get, // a hit: from the file
		"HEAD "+path+" HTTP/1.1\r\nHost: pop\r\n\r\n",
		"GET "+path+" HTTP/1.1\r\nHost: pop\r\nRange: bytes=1000-1999\r\n\r\n",
		get)
	want := bodies[path]
	for i, w := range [][]byte{want, nil, want[1000:2000], want} {
		if !bytes.Equal(x.Bodies[i], w) {
			t.Errorf("response %d (%s): %d bytes, not the origin's %d", i, x.Responses[i].Status, len(x.Bodies[i]), len(w))
		}
	}
	if cl := x.Responses[1].Header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
		t.Errorf("HEAD: Content-Length %s", cl)
	}
	if n := counterValue(s.metrics.sendfile); n != 2 {
		t.Errorf("%v responses sent from a body file, want the 2 full hits", n)
	}

	// A reader that takes its time: the segment leaves the cache (and its
	// file is dropped) while the response is in flight, far larger than
	// the socket buffers.
	big := "/live/s/e/v0/1.m4s"
	fastpathtest.Send(t, ln.Addr().String(), "GET "+big+" HTTP/1.1\r\nHost: pop\r\n\r\n")
	<-admitted
	c := fastpathtest.DialSmall(t, ln.Addr().String())
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: pop\r\n\r\n", big)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	o := s.local.shard(big).lruObject(t, big)
	if o.file == nil {
		t.Fatal("the segment has no body file")
	}
	for _, sh := range s.local.shards {
		sh.mu.Lock()
		sh.lru.Purge() // evicted: the file is dropped
		sh.mu.Unlock()
	}
	if o.file.state.Load() != 3 {
		t.Errorf("file state %d while its response is in flight, want 3 (held once, dropped)", o.file.state.Load())
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if body := append(first, rest...); !bytes.Equal(body, bodies[big]) {
		t.Errorf("the response whose file was dropped under it: %d body bytes, not the origin's %d", len(body), len(bodies[big]))
	}
	if n := counterValue(s.metrics.sendfile); n != 3 {
		t.Errorf("%v responses sent from a body file, want 3", n)
	}
}

// lruObject returns the object cached for key.
func (sh *shard) lruObject(t *testing.T, key string) *object {
	t.Helper()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	o, ok := sh.lru.Peek(key)
	if !ok {
		t.Fatalf("%s is not cached", key)
	}
	return o
}

// bodyFiles counts this process's open body files.
func bodyFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "/memfd:pop-body") {
			n++
		}
	}
	return n
}

// TestBodyFileOnlyWhenKept: a segment holds a body file when its cache
// keeps it; none is left open for one it does not keep (a proxy layer's
// cold key), a playlist or a small segment.
func TestBodyFileOnlyWhenKept(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   string
		size  int
		admit bool
		want  bool
	}{
		{"kept segment", "/live/s/e/v0/1.m4s", sendfileMin, true, true},
		{"segment not kept", "/live/s/e/v0/1.m4s", sendfileMin, false, false},
		{"small segment", "/live/s/e/v0/1.m4s", sendfileMin - 1, true, false},
		{"playlist", "/live/s/e/v0/index.m3u8", sendfileMin, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filed := make(chan struct{}, 1)
			c := newTestCache(t, cacheConfig{
				admit:      func(*object, int) bool { return tc.admit },
				onComplete: func(*object) { filed <- struct{}{} },
			})
			body := bytes.Repeat([]byte{7}, tc.size)
			before := bodyFiles(t)
			o, how, err := c.get(context.Background(), tc.key, classify(tc.key), func(_ context.Context, key string, cl class) (*object, io.ReadCloser, error) {
				o := &object{key: key, class: cl, status: http.StatusOK, header: http.Header{}, body: newFill(int64(len(body)), func() {}), cacheable: true}
				return o, io.NopCloser(bytes.NewReader(body)), nil
			}, "")
			if err != nil || how != lookupMiss {
				t.Fatalf("get: %v %v", how, err)
			}
			o.body.wait(context.Background())
			<-filed // kept or not
			if got := bodyFiles(t) - before; got != map[bool]int{true: 1, false: 0}[tc.want] {
				t.Errorf("%d body files made, want %v", got, tc.want)
			}
			c.dropFiles()
		})
	}
}

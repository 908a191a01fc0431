package pop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// await returns what ch receives, failing the test after 10 s.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		var zero T
		return zero
	}
}

// heldFetch is a fetchFunc whose upstream answers only once released. It
// reports each fetch as it starts, and each whose context ends first.
type heldFetch struct {
	started  chan string
	canceled chan string
	release  chan struct{}
}

func newHeldFetch() *heldFetch {
	return &heldFetch{started: make(chan string, 8), canceled: make(chan string, 8), release: make(chan struct{})}
}

func (h *heldFetch) fetch(ctx context.Context, key string, cl class) (*object, io.ReadCloser, error) {
	h.started <- key
	select {
	case <-h.release:
	case <-ctx.Done():
		h.canceled <- key
		return nil, nil, ctx.Err()
	}
	body := []byte("segment " + key)
	now := time.Now()
	o := &object{key: key, class: cl, status: http.StatusOK, header: http.Header{}, body: newFill(int64(len(body)), func() {}),
		stored: now, expires: now.Add(time.Hour), ttl: time.Hour, cacheable: true}
	return o, io.NopCloser(bytes.NewReader(body)), nil
}

// newTestCache returns a one-shard cache that keeps everything, whose
// fill goroutines end with the test.
func newTestCache(t *testing.T) *cache {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &group{}
	t.Cleanup(g.Close)
	return newCache("local", 1, 1<<20, false, func(*object, int) bool { return true }, m, context.Background(), g)
}

// TestFlightStopsWhenEveryoneLeaves: a fetch waiting for its upstream's
// headers goes on while any of its requests waits, and is canceled when
// the last one leaves; a request after that starts a new fetch.
func TestFlightStopsWhenEveryoneLeaves(t *testing.T) {
	c := newTestCache(t)
	h := newHeldFetch()
	const key = "/live/s/e/v0/7.m4s"

	type result struct {
		o   *object
		how lookup
		err error
	}
	get := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			o, how, err := c.get(ctx, key, classSegment, h.fetch, "")
			ch <- result{o, how, err}
		}()
		return ch
	}
	boarded := make(chan string, 8)
	c.boarded = func(k string) { boarded <- k }

	ctx1, leave1 := context.WithCancel(context.Background())
	ctx2, leave2 := context.WithCancel(context.Background())
	first := get(ctx1)
	await(t, h.started, "fetch")
	second := get(ctx2)
	await(t, boarded, "first request on the flight")
	await(t, boarded, "second request on the flight")

	leave1()
	if r := await(t, first, "first request's end"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first request: %v, want canceled", r.err)
	}
	select {
	case k := <-h.canceled:
		t.Fatalf("fetch of %s canceled while a request still waits for it", k)
	default:
	}
	leave2()
	await(t, second, "second request's end")
	if k := await(t, h.canceled, "canceled fetch"); k != key {
		t.Fatalf("fetch of %s canceled", k)
	}

	// Nobody wanted it: the next request fetches again, and gets it.
	third := get(context.Background())
	await(t, boarded, "third request on a flight")
	await(t, h.started, "second fetch")
	close(h.release)
	r := await(t, third, "third request's end")
	if r.err != nil || r.how != lookupMiss {
		t.Fatalf("third request: %v %v, want a miss served", r.how, r.err)
	}
	if err := r.o.body.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.flights) != 0 {
		t.Errorf("%d flights left in the shard", len(sh.flights))
	}
}

// TestViewersLeaveBeforeHeaders: when every viewer of a held segment hangs
// up before the origin answered, the PoP's request to the origin is
// canceled, as the origin holding it for nobody would waste its capacity.
func TestViewersLeaveBeforeHeaders(t *testing.T) {
	body := randomBody(16 << 10)
	arrived := make(chan string, 4)
	canceled := make(chan string, 4)
	release := make(chan struct{})
	origin := newStubOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		select { // held, as the origin holds the next segment
		case <-release:
		case <-r.Context().Done():
			canceled <- r.URL.Path
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(body)
	})
	s, ln := newNode(t, origin.URL)
	boarded := make(chan string, 4)
	s.local.boarded = func(k string) { boarded <- k }
	serveNode(t, s, ln)
	const path = "/live/s/e/v0/3.m4s"
	request := "GET " + path + " HTTP/1.1\r\nHost: pop\r\n\r\n"

	var viewers []net.Conn
	for range 2 {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, request)
		viewers = append(viewers, nc)
	}
	await(t, arrived, "origin request")
	await(t, boarded, "first viewer on the flight")
	await(t, boarded, "second viewer on the flight")
	for _, nc := range viewers {
		nc.Close()
	}
	if p := await(t, canceled, "canceled origin request"); p != path {
		t.Fatalf("origin request for %s canceled", p)
	}

	// The next viewer gets the segment from a new origin request.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, request)
	await(t, arrived, "second origin request")
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("status %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
	if n := origin.count(path); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

// TestFlightOverBeforeJoining: a request that joined a flight whose call
// then ended before it could wait on it (here, a failed fetch) starts
// over with a fetch of its own, instead of re-running the ended flight's
// canceled one.
func TestFlightOverBeforeJoining(t *testing.T) {
	c := newTestCache(t)
	const key = "/live/s/e/v0/8.m4s"
	fails := errors.New("origin unreachable")
	first := true
	started := make(chan struct{}, 4)
	failNow := make(chan struct{})
	fetch := func(ctx context.Context, key string, cl class) (*object, io.ReadCloser, error) {
		started <- struct{}{}
		if first { // runs in the first flight's call only
			first = false
			<-failNow
			return nil, nil, fails
		}
		h := newHeldFetch() // answers at once, unless ctx is done
		close(h.release)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return h.fetch(ctx, key, cl)
	}
	// The second request pauses between joining the flight and waiting on
	// it, until the first request has its answer.
	boarded := 0
	resume := make(chan struct{})
	paused := make(chan struct{})
	c.boarded = func(string) {
		if boarded++; boarded == 2 {
			close(paused)
			<-resume
		}
	}
	type result struct {
		o   *object
		err error
	}
	one, two := make(chan result, 1), make(chan result, 1)
	go func() {
		o, _, err := c.get(context.Background(), key, classSegment, fetch, "")
		one <- result{o, err}
	}()
	await(t, started, "first fetch")
	go func() {
		o, _, err := c.get(context.Background(), key, classSegment, fetch, "")
		two <- result{o, err}
	}()
	await(t, paused, "second request on the flight")
	close(failNow)
	if r := await(t, one, "first answer"); !errors.Is(r.err, fails) {
		t.Fatalf("first request: %v, want the fetch's failure", r.err)
	}
	close(resume)
	r := await(t, two, "second answer")
	if r.err != nil {
		t.Fatalf("second request: %v, want a fetch of its own", r.err)
	}
	if err := r.o.body.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

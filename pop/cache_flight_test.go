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
	"strings"
	"sync/atomic"
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
	return testAnswer(key, cl, "segment "+key)
}

// testAnswer is a fetch's answer: a cacheable 200 for key with body.
func testAnswer(key string, cl class, body string) (*object, io.ReadCloser, error) {
	now := time.Now()
	o := &object{key: key, class: cl, status: http.StatusOK, header: http.Header{}, body: newFill(int64(len(body)), func() {}),
		stored: now, expires: now.Add(time.Hour), ttl: time.Hour, cacheable: true}
	return o, io.NopCloser(strings.NewReader(body)), nil
}

// newTestCache returns the cache cfg describes, by default a one-shard
// "local" cache of 1 MiB that keeps everything, whose fill goroutines
// end with the test.
func newTestCache(t *testing.T, cfg cacheConfig) *cache {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	fills := &crew{}
	t.Cleanup(fills.Close)
	if cfg.name == "" {
		cfg.name = "local"
	}
	if cfg.maxBytes == 0 {
		cfg.maxBytes = 1 << 20
	}
	cfg.metrics, cfg.ctx, cfg.crew = m, context.Background(), fills
	return newCache(cfg)
}

// boardings is a gauge of held requests (cache.held) that tells, by a
// value on itself, each time a request boards a flight.
type boardings chan struct{}

func (b boardings) Inc() { b <- struct{}{} }
func (b boardings) Dec() {}

// watchBoarding makes c report each request boarding a flight.
func watchBoarding(c *cache) boardings {
	b := make(boardings, 16)
	c.held = b
	return b
}

// TestFlightStopsWhenEveryoneLeaves: a fetch waiting for its upstream's
// headers goes on while any of its requests waits, and is canceled when
// the last one leaves; a request after that starts a new fetch.
func TestFlightStopsWhenEveryoneLeaves(t *testing.T) {
	c := newTestCache(t, cacheConfig{})
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
	boarded := watchBoarding(c)

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
	boarded := watchBoarding(s.local)
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

// TestFlightAnswersEveryWaiter: the requests on a flight share its one
// fetch and its answer, a failure too; a request after it starts a new
// flight.
func TestFlightAnswersEveryWaiter(t *testing.T) {
	c := newTestCache(t, cacheConfig{})
	boarded := watchBoarding(c)
	const key = "/live/s/e/v0/8.m4s"
	fails := errors.New("origin unreachable")
	started := make(chan struct{}, 4)
	failNow := make(chan struct{})
	fetches := 0
	fetch := func(ctx context.Context, key string, cl class) (*object, io.ReadCloser, error) {
		started <- struct{}{}
		if fetches++; fetches == 1 { // the flight's calls never overlap
			<-failNow
			return nil, nil, fails
		}
		return testAnswer(key, cl, "segment")
	}
	type result struct {
		how lookup
		err error
	}
	answers := make(chan result, 2)
	for range 2 {
		go func() {
			_, how, err := c.get(context.Background(), key, classSegment, fetch, "")
			answers <- result{how, err}
		}()
		await(t, boarded, "request on the flight")
	}
	await(t, started, "fetch")
	close(failNow)
	for range 2 {
		if r := await(t, answers, "answer"); !errors.Is(r.err, fails) || r.how != lookupMiss {
			t.Fatalf("request: %v %v, want the fetch's failure", r.how, r.err)
		}
	}
	o, how, err := c.get(context.Background(), key, classSegment, fetch, "")
	if err != nil || how != lookupMiss {
		t.Fatalf("request after the failure: %v %v, want a fetch of its own", how, err)
	}
	if err := o.body.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fetches != 2 {
		t.Errorf("%d fetches, want 2", fetches)
	}
}

// TestFlightAfterAbandoned: a request after a flight was abandoned starts
// a new one, and the abandoned flight's fetch answering late (deaf to its
// cancellation, as an upstream slow to notice) neither publishes its
// object nor disturbs the new flight: a request after that joins it.
func TestFlightAfterAbandoned(t *testing.T) {
	c := newTestCache(t, cacheConfig{})
	boarded := watchBoarding(c)
	const key = "/live/s/e/v0/9.m4s"
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	started := make(chan int, 4)
	closed := make(chan struct{}, 2) // a fetch's body, closed
	var fetches atomic.Int32
	fetch := func(_ context.Context, key string, cl class) (*object, io.ReadCloser, error) {
		i := int(fetches.Add(1)) - 1
		started <- i
		if i >= len(release) {
			return nil, nil, errors.New("one fetch too many")
		}
		<-release[i]
		o, body, err := testAnswer(key, cl, "answer "+strconv.Itoa(i))
		return o, closeNotifier{body, closed}, err
	}
	type result struct {
		o   *object
		how lookup
		err error
	}
	get := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			o, how, err := c.get(ctx, key, classSegment, fetch, "")
			ch <- result{o, how, err}
		}()
		await(t, boarded, "request on a flight")
		return ch
	}

	ctx, leave := context.WithCancel(context.Background())
	abandoned := get(ctx)
	await(t, started, "first fetch")
	leave()
	if r := await(t, abandoned, "abandoned request"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("abandoned request: %v", r.err)
	}
	first := get(context.Background())
	if i := await(t, started, "second fetch"); i != 1 {
		t.Fatalf("fetch %d started", i)
	}
	close(release[0])
	await(t, closed, "the abandoned flight's answer, dropped")
	second := get(context.Background())
	close(release[1])
	for _, ch := range []<-chan result{first, second} {
		r := await(t, ch, "answer")
		if r.err != nil || r.how != lookupCoalesced {
			t.Fatalf("request: %v %v, want the second flight's answer, shared", r.how, r.err)
		}
		if err := r.o.body.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b, _ := r.o.body.Bytes(); string(b) != "answer 1" {
			t.Fatalf("request got %q, want the second fetch's answer", b)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// closeNotifier is a body that reports its Close on closed.
type closeNotifier struct {
	io.ReadCloser
	closed chan<- struct{}
}

func (c closeNotifier) Close() error {
	c.closed <- struct{}{}
	return c.ReadCloser.Close()
}

// TestFlightLandsOnce: an abandoned flight whose call lands it late,
// after its key has a new flight, leaves that one alone: a request after
// it still joins the new flight, and the fetch is not run again.
func TestFlightLandsOnce(t *testing.T) {
	c := newTestCache(t, cacheConfig{})
	h := newHeldFetch()
	const key = "/live/s/e/v0/10.m4s"
	sh := c.shard(key)
	abandoned, _ := sh.board(key, classSegment, h.fetch, "")
	await(t, h.started, "first fetch")
	abandoned.leave(true)
	await(t, h.canceled, "canceled fetch")
	fl, first := sh.board(key, classSegment, h.fetch, "")
	await(t, h.started, "second fetch")
	abandoned.end() // as its call does, in its own time
	if again, second := sh.board(key, classSegment, h.fetch, ""); again != fl {
		t.Errorf("a request after the abandoned flight landed is on another flight")
		again.leave(true)
		fl.leave(true)
	} else {
		close(h.release)
		r1, r2 := await(t, first, "answer"), await(t, second, "answer")
		if r1.Err != nil || r1.Val != r2.Val || !r2.Shared {
			t.Errorf("answers %v %v, %v %v; want one object, shared", r1.Val, r1.Err, r2.Val, r2.Err)
		}
		fl.leave(false)
		again.leave(false)
	}
	select {
	case k := <-h.started:
		t.Errorf("fetch of %s run again", k)
	default:
	}
}

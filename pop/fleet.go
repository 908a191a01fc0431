package pop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A fleet of origins (issue #21): each stream is served by a primary
// origin and a backup fed the same publisher, which make the same files
// byte for byte (origin: Directory). The node asks the directory which
// origins serve a stream (Config.Directory, from memory: no request
// waits on it), fetches from the primary and goes to the backup at once
// when the primary fails: a connection error, a 5xx, no answer within
// Config.HedgeAfter (then both are asked, and the first answer wins), or
// a body that breaks in the middle, which is continued from the backup
// (a Range request for the bytes missing, or the segment being packaged
// streamed again), so that the waiters read one uninterrupted body.

// Directory locates the origins of a stream in a fleet (package
// directory's View, adapted by the command). Declared here, by its
// consumer; safe for concurrent use, and fast: it is asked on every
// upstream fetch.
type Directory interface {
	// Origins returns the base URLs of the origins serving stream: the
	// primary, and the backup ("" for none); ok is false when the
	// directory does not know the stream.
	Origins(stream string) (primary, backup string, ok bool)
	// Some returns the base URL of a live origin of the fleet, for the
	// requests that belong to no stream (/time, the MPDs' clock); ok is
	// false when the directory knows none.
	Some() (base string, ok bool)
}

// fleetTargets returns the origins to fetch key from, in order, when the
// directory knows its stream.
func (s *Server) fleetTargets(key string) ([]string, bool) {
	if s.cfg.Directory == nil {
		return nil, false
	}
	primary, backup, ok := s.cfg.Directory.Origins(streamOf(key))
	if !ok || primary == "" {
		return nil, false
	}
	if backup == "" || backup == primary {
		return []string{strings.TrimSuffix(primary, "/")}, true
	}
	return []string{strings.TrimSuffix(primary, "/"), strings.TrimSuffix(backup, "/")}, true
}

// fleetAnswer is one origin's answer to a fleet fetch.
type fleetAnswer struct {
	i      int // the target's index
	resp   *http.Response
	err    error
	cancel context.CancelFunc
}

// fetchFleet gets key from targets: the first, then the next at once on a
// connection error, a 5xx or a 404, or beside it when it has not answered
// within HedgeAfter. It returns the first answer that is neither a 5xx
// nor a 404, else a 404 if one came, else the last failure, the index of its target, and its request's cancel function;
// the other requests are canceled and waited for.
func (s *Server) fetchFleet(ctx context.Context, key string, targets []string) (*http.Response, int, context.CancelFunc, error) {
	answers := make(chan fleetAnswer, len(targets))
	cancels := make([]context.CancelFunc, 0, len(targets))
	pending := 0
	began := time.Now()
	start := func(reason string) {
		i := len(cancels)
		if i == len(targets) {
			return
		}
		if i > 0 {
			s.metrics.failovers[reason].Inc()
			s.log.Info("fetching from the backup origin", "key", key, "origin", targets[i], "reason", reason)
		}
		rctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		pending++
		go func() { // waited for below: every request started is answered
			resp, err := doGet(rctx, s.client, targets[i]+key, nil)
			answers <- fleetAnswer{i, resp, err, cancel}
		}()
	}
	start("")
	hedge := time.NewTimer(s.cfg.HedgeAfter)
	defer hedge.Stop()
	var win, last, notFound fleetAnswer
	found := false
	for pending > 0 {
		select {
		case <-hedge.C:
			if !found {
				start("slow")
			}
		case a := <-answers:
			pending--
			switch {
			case found: // a loser
				discard(a)
			case a.err == nil && a.resp.StatusCode < 500 && a.resp.StatusCode != http.StatusNotFound:
				// A 404 is taken only when no origin has the object: an
				// origin restarted while the directory still names it
				// (its lease not yet expired) has none of the stream,
				// and the other one does.
				win, found = a, true
				for j, cancel := range cancels {
					if j != a.i {
						cancel()
					}
				}
			default:
				if a.err == nil && a.resp.StatusCode == http.StatusNotFound {
					discard(notFound)
					notFound = a // answered if no other origin has it
				} else {
					discard(last)
					last = a
				}
				if ctx.Err() != nil {
					break
				}
				switch {
				case a.err != nil:
					start("unreachable")
				case a.resp.StatusCode == http.StatusNotFound:
					start("not_found")
				default:
					start("status")
				}
			}
		}
	}
	if !found && notFound.resp != nil {
		win, found, notFound = notFound, true, fleetAnswer{}
	}
	if found {
		discard(last)
		discard(notFound)
		if win.i > 0 {
			// When the first bytes from the backup reach the waiters
			// (bench/failover measures the gap from a kill to this).
			s.log.Info("the backup origin answered", "key", key, "origin", targets[win.i], "status", win.resp.StatusCode, "after", time.Since(began).Round(time.Millisecond))
		}
		return win.resp, win.i, win.cancel, nil
	}
	if last.err != nil {
		last.cancel()
		return nil, 0, nil, last.err
	}
	return last.resp, last.i, last.cancel, nil
}

// discard releases an answer that is not used (the zero one too).
func discard(a fleetAnswer) {
	if a.err == nil && a.resp != nil {
		a.resp.Body.Close()
	}
	if a.cancel != nil {
		a.cancel()
	}
}

// resumable reads an origin's body, and when it breaks in the middle,
// goes on from the next origins of the fleet with a Range request for
// the bytes missing: they serve the same bytes.
type resumable struct {
	s       *Server
	ctx     context.Context
	key     string
	body    io.ReadCloser
	cancel  context.CancelFunc
	next    []string // the origins to go on from
	read    int64    // bytes read so far
	length  int64    // the whole body's length, -1 if unknown
	etag    string   // the first answer's ETag; the backup's must match
	resumed bool
}

func (r *resumable) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.read += int64(n)
		if err == nil || errors.Is(err, io.EOF) && (r.length < 0 || r.read == r.length) {
			return n, err
		}
		if r.ctx.Err() != nil || len(r.next) == 0 || r.length >= 0 && r.read >= r.length {
			return n, err
		}
		if rerr := r.resume(err); rerr != nil {
			return n, fmt.Errorf("%w; going on from the backup: %w", err, rerr)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume goes on from the next origin, after cause broke the body.
func (r *resumable) resume(cause error) error {
	r.body.Close()
	r.cancel()
	target := r.next[0]
	r.next = r.next[1:]
	r.s.metrics.failovers["resume"].Inc()
	r.s.log.Warn("a body broke; going on from the backup origin", "key", r.key, "origin", target, "at", r.read, "error", cause)
	// A complete object: the bytes missing. One of unknown length was a
	// segment being packaged, streamed chunk by chunk: a range of it
	// waits at the origin for its end (a 206 states its last byte), up
	// to a segment's duration with the waiters starved, while a plain
	// GET streams it again as it is packaged; the bytes read are
	// skipped.
	var h http.Header
	if r.length >= 0 {
		h = http.Header{"Range": {"bytes=" + strconv.FormatInt(r.read, 10) + "-"}}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	resp, err := doGet(ctx, r.s.client, target+r.key, h)
	if err != nil {
		cancel()
		return err
	}
	if etag := resp.Header.Get("Etag"); etag != r.etag {
		// Another object under the same name: a ladder rendition each
		// origin's encoder made on its own (origin ETags name the
		// process that made it).
		resp.Body.Close()
		cancel()
		return fmt.Errorf("the backup's object is another: ETag %s, not %s", etag, r.etag)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(r.read, 10)+"-"):
		// Not the same object, if its length differs: the origins'
		// files diverged (a publisher lost by one origin only, and
		// resumed there with its timeline moved). No splicing then.
		total := resp.Header.Get("Content-Range")
		total = total[strings.LastIndexByte(total, '/')+1:]
		if r.length >= 0 && total != strconv.FormatInt(r.length, 10) {
			resp.Body.Close()
			cancel()
			return fmt.Errorf("the backup's object has %s bytes, not %d", total, r.length)
		}
	case resp.StatusCode == http.StatusOK:
		if r.length >= 0 && resp.ContentLength >= 0 && resp.ContentLength != r.length {
			resp.Body.Close()
			cancel()
			return fmt.Errorf("the backup's object has %d bytes, not %d", resp.ContentLength, r.length)
		}
		// The whole body: skip what was read.
		if _, err := io.CopyN(io.Discard, resp.Body, r.read); err != nil {
			resp.Body.Close()
			cancel()
			return err
		}
	default:
		resp.Body.Close()
		cancel()
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	r.body, r.cancel, r.resumed = resp.Body, cancel, true
	r.s.log.Info("the backup origin answered", "key", r.key, "origin", target, "status", resp.StatusCode, "at", r.read)
	return nil
}

func (r *resumable) Close() error {
	err := r.body.Close()
	r.cancel()
	return err
}

package gslb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// SessionContentType marks a report session: a POST /api/report whose
// body is a stream of reports, one JSON object a line, each acknowledged
// on the response (one line, {"ok":true} or {"error":"…"}) as it arrives.
// The session is the PoP's lease: when its body ends, cleanly or not (the
// PoP closed it, its process died and the kernel closed the connection),
// or no report comes within the Balancer's Timeout, the PoPs it reported
// for are removed at once; a PoP reporting again is back.
//
// A POST with any other content type carries one report, answered 204.
const SessionContentType = "application/x-ndjson"

// serveReport takes one report, or a session of them.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == SessionContentType {
		s.serveSession(w, r)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportBytes))
	if err != nil {
		s.reports.WithLabelValues("invalid").Inc()
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("read report: %v", err)})
		return
	}
	rep, err := ParseReport(data)
	if err == nil {
		err = s.b.Report(rep)
	}
	if err != nil {
		s.reports.WithLabelValues("invalid").Inc()
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	s.reports.WithLabelValues("ok").Inc()
	w.WriteHeader(http.StatusNoContent)
}

// session is one report session in progress.
type session struct {
	rc *http.ResponseController
	mu sync.Mutex
	// closed is set when the server shuts down; guarded by mu, so that a
	// read deadline set by the session never undoes the one set to end
	// it.
	closed bool
}

// setReadDeadline extends the session's read deadline, unless it is
// closed.
func (ss *session) setReadDeadline(t time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.rc.SetReadDeadline(t) // fails only without a connection to set it on
	return true
}

func (ss *session) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	ss.rc.SetReadDeadline(time.Now())
}

// serveSession reads a session's reports as they come (see
// SessionContentType), answering each on the open response.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// HTTP/1 needs the request body readable after the response has
	// started; HTTP/2 always allows it and says ErrNotSupported.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		writeJSON(w, http.StatusInternalServerError, errorBody{fmt.Sprintf("full duplex: %v", err)})
		return
	}
	ss := &session{rc: rc}
	id, ok := s.sessions.add(ss)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"shutting down"})
		return
	}
	defer s.sessions.remove(ss)

	w.Header().Set("Content-Type", SessionContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	log := s.log.With("session", id, "client", s.clientAddr(r))
	why := "report session ended: " + s.readSession(ss, w, r.Body, id, log)
	level := slog.LevelWarn
	if strings.HasSuffix(why, closedByPoP) {
		level = slog.LevelInfo
	}
	log.Log(r.Context(), level, why)
	s.b.endSession(id, why)
}

// closedByPoP is how readSession says the PoP ended the body.
const closedByPoP = "closed by the PoP"

// readSession applies a session's reports as they come and returns why
// it ended.
func (s *Server) readSession(ss *session, w http.ResponseWriter, body io.Reader, id uint64, log *slog.Logger) string {
	if err := ss.rc.Flush(); err != nil {
		return fmt.Sprintf("flush: %v", err)
	}
	log.Info("report session opened")
	in := bufio.NewReaderSize(body, MaxReportBytes+1)
	for {
		if !ss.setReadDeadline(time.Now().Add(s.b.cfg.Timeout)) {
			return "the balancer is shutting down"
		}
		line, readErr := in.ReadSlice('\n')
		if errors.Is(readErr, bufio.ErrBufferFull) {
			s.reports.WithLabelValues("invalid").Inc()
			s.ack(ss.rc, w, fmt.Errorf("%w: longer than %d bytes", ErrInvalidReport, MaxReportBytes))
			return "report too long"
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			rep, err := ParseReport(line)
			if err == nil {
				err = s.b.report(rep, id)
			}
			if err != nil {
				s.reports.WithLabelValues("invalid").Inc()
				s.ack(ss.rc, w, err)
				return err.Error()
			}
			s.reports.WithLabelValues("ok").Inc()
			if err := s.ack(ss.rc, w, nil); err != nil {
				return err.Error()
			}
		}
		switch {
		case readErr == nil:
		case errors.Is(readErr, io.EOF):
			return closedByPoP
		case errors.Is(readErr, os.ErrDeadlineExceeded):
			return fmt.Sprintf("no report within %v", s.b.cfg.Timeout)
		default:
			return readErr.Error()
		}
	}
}

// ackTimeout bounds the write of one acknowledgement.
const ackTimeout = 5 * time.Second

// ack answers one report of a session: {"ok":true}, or the error.
func (s *Server) ack(rc *http.ResponseController, w io.Writer, err error) error {
	line := []byte(`{"ok":true}` + "\n")
	if err != nil {
		line, _ = json.Marshal(errorBody{err.Error()}) // cannot fail
		line = append(line, '\n')
	}
	rc.SetWriteDeadline(time.Now().Add(ackTimeout))
	if _, err := w.Write(line); err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush ack: %w", err)
	}
	return nil
}

// add registers ss and returns its id; false once closeAll was called.
func (set *sessionSet) add(ss *session) (uint64, bool) {
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.closed {
		return 0, false
	}
	set.open[ss] = struct{}{}
	return set.next.Add(1), true
}

func (set *sessionSet) remove(ss *session) {
	set.mu.Lock()
	defer set.mu.Unlock()
	delete(set.open, ss)
}

func (set *sessionSet) count() int {
	set.mu.Lock()
	defer set.mu.Unlock()
	return len(set.open)
}

// CloseSessions ends every report session and refuses new ones, so that
// http.Server.Shutdown does not wait for them: register it with
// http.Server.RegisterOnShutdown.
func (s *Server) CloseSessions() {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	s.sessions.closed = true
	for ss := range s.sessions.open {
		ss.close()
	}
}

package httpserve

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// DebugServer listens on addr with Go's profiler (net/http/pprof) under
// /debug/pprof/, for an operator to profile a server under real load:
// `go tool pprof http://ADDR/debug/pprof/profile?seconds=30`. It serves
// nothing else; keep addr off the public network.
func DebugServer(addr string, log *slog.Logger) (*Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s, err := Listen(addr, mux, nil, log)
	if err != nil {
		return nil, err
	}
	s.HTTP.WriteTimeout = 0 // a profile takes as long as it is asked to
	return s, nil
}

// Command herd is the load tool of the PoP benchmark (bench/pop/run.sh).
//
//	herd -mode origin -listen 127.0.0.1:PORT
//	    a stub origin: any /live/... segment after a delay (or spread
//	    over it with -pieces), a small cacheable playlist at once,
//	    request counts per path at /count.
//	herd -mode client -system NAME=URL[,URL...] -n N -rounds R -origin URL -out FILE
//	    a thundering herd: N connections, opened beforehand and spread
//	    over the URLs, GET the same new segment at one instant; one JSON
//	    line per herd is appended to FILE.
//	herd -mode report -herd FILE -wrk FILE
//	    the summary tables of a run.
//
// It talks to 127.0.0.1 only: every URL it is given must be on loopback.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	mode := flag.String("mode", "", "origin, client or report")
	// origin
	listen := flag.String("listen", "127.0.0.1:0", "origin: listen address (loopback)")
	delay := flag.Duration("delay", 220*time.Millisecond, "origin: time until a segment's last byte leaves")
	pieces := flag.Int("pieces", 0, "origin: 0 sends a segment's headers and body after -delay; n sends it in n even pieces over -delay, headers with the first; report: the origin's -pieces")
	segBytes := flag.Int("segment-bytes", 250<<10, "origin: segment body size; client: expected body size")
	plBytes := flag.Int("playlist-bytes", 600, "origin: playlist body size")
	private := flag.String("private", "", "origin: streams whose names start with this need a playback token (X-Live-Access: token); empty: none")
	// client
	var systems multiFlag
	flag.Var(&systems, "system", "client: NAME=URL[,URL...] to herd (repeatable; connections are spread evenly over the URLs)")
	n := flag.Int("n", 1000, "client: concurrent connections per herd")
	rounds := flag.Int("rounds", 1, "client: herds per system, each on a fresh segment path")
	firstRound := flag.Int("first-round", 1, "client: number of the first round (for a caller that alternates systems)")
	originURL := flag.String("origin", "", "client: the stub origin, asked for its request count of each herd's path")
	prefix := flag.String("prefix", "/live/herd", "client: path prefix of the herd segments' stream names (a run id belongs in it): /live/NAME gives streams NAME-SYSTEM-nN")
	token := flag.String("token", "", "client: a playback token, sent in the path (/t/TOKEN/live/...) of every request")
	hot := flag.Bool("hot", true, "client: after each herd on a new path, herd again on the same, now cached, path")
	timeout := flag.Duration("timeout", 60*time.Second, "client: bound on one request, connect to last byte")
	pause := flag.Duration("pause", time.Second, "client: quiet time between two herds")
	out := flag.String("out", "", "client: JSON lines file to append each herd's result to")
	label := flag.String("label", "", "client: free text stored with each result (e.g. the pass number)")
	// report
	herdFile := flag.String("herd", "", "report: the herd results (JSON lines)")
	wrkFile := flag.String("wrk", "", "report: the wrk results (tab-separated: system object round rps mbps errors cpu_s)")
	target := flag.Duration("target", 220*time.Millisecond, "report: the origin delay latencies are compared with")
	flag.Parse()

	var err error
	switch *mode {
	case "origin":
		err = runOrigin(*listen, *delay, *pieces, *segBytes, *plBytes, *private)
	case "client":
		err = runClient(clientConfig{
			systems: systems, n: *n, rounds: *rounds, firstRound: *firstRound, origin: *originURL, prefix: *prefix, token: *token,
			hot: *hot, timeout: *timeout, pause: *pause, out: *out, label: *label, size: *segBytes,
		})
	case "report":
		err = runReport(*herdFile, *wrkFile, *target, *pieces)
	default:
		err = fmt.Errorf("-mode must be origin, client or report, not %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herd:", err)
		os.Exit(1)
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

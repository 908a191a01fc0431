// Command urls replays the URL-variant attack of issue #18 B against a PoP
// serving a live stream, bounded in count and time, and prints what it
// cost the origin: the PoP's upstream fetches (live_pop_upstream_fetches_total)
// before and after, and the answers it got.
//
//	go run ./bench/attack/urls -base http://127.0.0.1:8080 -stream demo -n 20000
//
// Phases, each of -n requests over -conns connections, stopping at
// -duration whatever is left:
//
//	msn      one live segment with ?_HLS_msn=i (i distinct)
//	spell    the same segment zero-padded and %-escaped, i ways
//	random   segments of random numbers (up to 2^40) in the live rendition
//	near     segments of random numbers up to 100 past the newest
//	names    playlists of random stream names
//
// Every request goes to 127.0.0.0/8 only: -base must be a loopback URL.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("base", "http://127.0.0.1:8080", "the PoP's base URL (loopback only)")
	stream := flag.String("stream", "demo", "a live stream behind it")
	n := flag.Int("n", 20000, "requests per phase")
	conns := flag.Int("conns", 32, "concurrent connections")
	duration := flag.Duration("duration", 60*time.Second, "longest time per phase")
	phases := flag.String("phases", "msn,spell,random,near,names", "phases to run, in order")
	flag.Parse()
	if err := run(*base, *stream, *n, *conns, *duration, strings.Split(*phases, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "urls:", err)
		os.Exit(1)
	}
}

func run(base, stream string, n, conns int, duration time.Duration, phases []string) error {
	u, err := url.Parse(base)
	if err != nil || !strings.HasPrefix(u.Hostname(), "127.") {
		return fmt.Errorf("-base %q: a loopback URL (127.0.0.0/8) is required", base)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	dir, seg, err := liveSegment(c, base, stream)
	if err != nil {
		return err
	}
	fmt.Printf("target: %s%s%d.m4s\n", base, dir, seg)
	for _, phase := range phases {
		var uri func(i int) string
		switch phase {
		case "msn":
			uri = func(i int) string { return fmt.Sprintf("%s%d.m4s?_HLS_msn=%d", dir, seg, i) }
		case "spell":
			uri = func(i int) string {
				s := strconv.FormatUint(seg, 10)
				if i%2 == 0 {
					return dir + strings.Repeat("0", 1+i/2%40) + s + ".m4s"
				}
				var b strings.Builder
				for j, ch := range s {
					if (i>>j)&1 == 1 {
						fmt.Fprintf(&b, "%%%02X", ch)
					} else {
						b.WriteRune(ch)
					}
				}
				return dir + b.String() + ".m4s"
			}
		case "random":
			uri = func(int) string { return fmt.Sprintf("%s%d.m4s", dir, rand.Uint64N(1<<40)) }
		case "near":
			uri = func(int) string { return fmt.Sprintf("%s%d.m4s", dir, rand.Uint64N(seg+100)) }
		case "names":
			uri = func(int) string { return fmt.Sprintf("/live/x%016x/index.m3u8", rand.Uint64()) }
		default:
			return fmt.Errorf("unknown phase %q", phase)
		}
		before, err := upstreamFetches(c, base)
		if err != nil {
			return err
		}
		start := time.Now()
		codes, sent := hammer(c, base, uri, n, conns, duration)
		elapsed := time.Since(start)
		after, err := upstreamFetches(c, base)
		if err != nil {
			return err
		}
		fmt.Printf("%-7s %6d requests in %5.1fs  upstream fetches %6.0f  answers %s\n", phase, sent, elapsed.Seconds(), after-before, codes)
	}
	return nil
}

// hammer sends n requests, uri(i) for i in [0, n), over conns workers,
// stopping at duration, and returns the answers by status.
func hammer(c *http.Client, base string, uri func(int) string, n, conns int, duration time.Duration) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				code := "error"
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+uri(i), nil)
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = strconv.Itoa(resp.StatusCode)
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	keys := make([]string, 0, len(codes))
	total := 0
	for k, v := range codes {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%d ", k, codes[k])
	}
	return strings.TrimSpace(b.String()), total
}

// liveSegment finds, through the multivariant playlist, the first media
// playlist of stream and its newest segment: its directory and number.
func liveSegment(c *http.Client, base, stream string) (string, uint64, error) {
	mv, err := getLines(c, base+"/live/"+stream+"/index.m3u8")
	if err != nil {
		return "", 0, err
	}
	var media string
	for _, l := range mv {
		if l != "" && !strings.HasPrefix(l, "#") {
			media = l
			break
		}
	}
	if media == "" {
		return "", 0, errors.New("no media playlist in the multivariant playlist")
	}
	dir := "/live/" + stream + "/" + media[:strings.LastIndexByte(media, '/')+1]
	pl, err := getLines(c, base+dir+"index.m3u8")
	if err != nil {
		return "", 0, err
	}
	for i := len(pl) - 1; i >= 0; i-- {
		if n, err := strconv.ParseUint(strings.TrimSuffix(pl[i], ".m4s"), 10, 64); err == nil {
			return dir, n, nil
		}
	}
	return "", 0, errors.New("no segment in the media playlist")
}

func getLines(c *http.Client, u string) ([]string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	return lines, sc.Err()
}

// upstreamFetches reads the PoP's live_pop_upstream_fetches_total, summed.
func upstreamFetches(c *http.Client, base string) (float64, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "live_pop_upstream_fetches_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum, sc.Err()
}

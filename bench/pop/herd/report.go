package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ours names the systems that are our PoP; the others are references.
func ours(system string) bool { return strings.HasPrefix(system, "ours") }

// runReport prints the summary tables of a run's results.
func runReport(herdFile, wrkFile string, target time.Duration, pieces int) error {
	if herdFile != "" {
		if err := reportHerd(herdFile, target, pieces); err != nil {
			return err
		}
	}
	if wrkFile != "" {
		if err := reportWrk(wrkFile); err != nil {
			return err
		}
	}
	return nil
}

// reportHerd prints the herd table; pieces is the stub origin's -pieces.
func reportHerd(file string, target time.Duration, pieces int) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct {
		n      int
		system string
		kind   string
	}
	groups := map[key][]herdResult{}
	var ns []int
	var systems []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r herdResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		k := key{r.N, r.System, r.Kind}
		groups[k] = append(groups[k], r)
		if !slices.Contains(ns, r.N) {
			ns = append(ns, r.N)
		}
		if !slices.Contains(systems, r.System) {
			systems = append(systems, r.System)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	slices.Sort(ns)
	tms := ms(target)
	if pieces == 0 {
		fmt.Printf("THUNDERING HERD: N connections GET one new 250 KiB segment at one instant; the origin sends it whole after %s.\n", target)
	} else {
		fmt.Printf("THUNDERING HERD: N connections GET one new 250 KiB segment at one instant; the origin sends it in %d pieces over %s.\n", pieces, target)
	}
	fmt.Println("Latency = request send -> last body byte. Each cell is the median over rounds of that round's percentile; [worst round].")
	fmt.Println("fetch/seg = stub origin requests per segment path (mean, max over rounds). hot = the same herd again on the now-cached path.")
	if pieces == 0 {
		fmt.Println("excess = p99 - origin delay - hot p99: what the miss costs beyond the wait for the origin and the delivery of N bodies.")
	} else {
		fmt.Println("excess: not given, as delivery overlaps the origin's own time when it streams; p99 itself is the measure.")
	}
	fmt.Printf("%-6s %-8s %3s %9s %8s %8s %18s %9s %9s %9s %7s %16s %7s\n",
		"N", "system", "rnd", "fetch/seg", "p50 ms", "p90 ms", "p99 ms [worst]", "p99/"+strconv.Itoa(int(tms)), "ttfb p50", "ttfb p99", "errors", "hot p50/p99 ms", "excess")
	var goals []string
	for _, n := range ns {
		for _, s := range systems {
			miss := groups[key{n, s, "miss"}]
			if len(miss) == 0 {
				continue
			}
			hot := groups[key{n, s, "hot"}]
			var fetches, p50, p90, p99, t50, t99, hp50, hp99 []float64
			errs, maxFetch, allOne := 0, 0, true
			for _, r := range miss {
				fetches = append(fetches, float64(r.OriginCount))
				maxFetch = max(maxFetch, r.OriginCount)
				allOne = allOne && r.OriginCount == 1
				p50, p90, p99 = append(p50, r.P50), append(p90, r.P90), append(p99, r.P99)
				t50, t99 = append(t50, r.TTFB50), append(t99, r.TTFB99)
				errs += r.Errors
			}
			for _, r := range hot {
				hp50, hp99 = append(hp50, r.P50), append(hp99, r.P99)
				errs += r.Errors
			}
			ratio := median(p99) / tms
			excess := "-"
			if pieces == 0 {
				excess = strconv.FormatFloat(median(p99)-tms-median(hp99), 'f', 1, 64)
			}
			fmt.Printf("%-6d %-8s %3d %4.2f, %-3d %8.1f %8.1f %9.1f [%6.1f] %9.2f %9.1f %9.1f %7d %7.1f/%-8.1f %7s\n",
				n, s, len(miss), mean(fetches), maxFetch, median(p50), median(p90), median(p99), slices.Max(p99), ratio,
				median(t50), median(t99), errs, median(hp50), median(hp99), excess)
			if ours(s) {
				goals = append(goals, fmt.Sprintf("  %-8s N=%-5d one origin fetch per segment: %-4s (max %d)   p99/%s = %.2f <= 1.15: %s",
					s, n, yesNo(allOne), maxFetch, target, ratio, yesNo(ratio <= 1.15)))
			}
		}
	}
	if len(goals) > 0 {
		fmt.Println("Goals for ours:")
		for _, g := range goals {
			fmt.Println(g)
		}
	}
	fmt.Println()
	return nil
}

type wrkRow struct {
	system, object string
	rps, mbps      float64
	errors         int
	cpu, secs      float64
}

func reportWrk(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct{ object, system string }
	rows := map[key][]wrkRow{}
	var objects, systems []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		r := wrkRow{system: fs[0], object: fs[1]}
		r.rps, _ = strconv.ParseFloat(fs[3], 64)
		r.mbps, _ = strconv.ParseFloat(fs[4], 64)
		r.errors, _ = strconv.Atoi(fs[5])
		r.cpu, _ = strconv.ParseFloat(fs[6], 64)
		r.secs, _ = strconv.ParseFloat(fs[7], 64)
		rows[key{r.object, r.system}] = append(rows[key{r.object, r.system}], r)
		if !slices.Contains(objects, r.object) {
			objects = append(objects, r.object)
		}
		if !slices.Contains(systems, r.system) {
			systems = append(systems, r.system)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Println("CACHE-HIT THROUGHPUT (wrk, one system at a time, after a warm-up). req/s = median over rounds [each round].")
	fmt.Println("req/CPU-s = requests per CPU-second of the server's processes (less sensitive to the load generator and to neighbours).")
	fmt.Printf("%-9s %-8s %10s %-28s %9s %10s %7s\n", "object", "system", "req/s", "[rounds]", "MB/s", "req/CPU-s", "errors")
	var goals []string
	for _, o := range objects {
		med := map[string]float64{}
		perCPU := map[string]float64{}
		for _, s := range systems {
			rs := rows[key{o, s}]
			if len(rs) == 0 {
				continue
			}
			var rps, mbps, eff []float64
			var each []string
			errs := 0
			for _, r := range rs {
				rps, mbps = append(rps, r.rps), append(mbps, r.mbps)
				each = append(each, fmt.Sprintf("%.0f", r.rps))
				if r.cpu > 0 {
					eff = append(eff, r.rps*r.secs/r.cpu)
				}
				errs += r.errors
			}
			med[s], perCPU[s] = median(rps), median(eff)
			fmt.Printf("%-9s %-8s %10.0f %-28s %9.1f %10.0f %7d\n", o, s, med[s], "["+strings.Join(each, " ")+"]", median(mbps), perCPU[s], errs)
		}
		best, bestName, bestCPU := 0.0, "", 0.0
		for _, s := range systems {
			if !ours(s) && med[s] > best {
				best, bestName = med[s], s
			}
			if !ours(s) {
				bestCPU = max(bestCPU, perCPU[s])
			}
		}
		for _, s := range systems {
			if !ours(s) || med[s] == 0 || best == 0 {
				continue
			}
			ratio := med[s] / best
			goals = append(goals, fmt.Sprintf("  %-9s %-8s req/s %.0f / %s %.0f = %.2f >= 1.1: %-4s (per CPU-s: %.2f)",
				o, s, med[s], bestName, best, ratio, yesNo(ratio >= 1.1), safeDiv(perCPU[s], bestCPU)))
		}
		// A token on every request costs ours1t at most 5% of ours1's
		// throughput (#23), both in the same run.
		if med["ours1"] > 0 && med["ours1t"] > 0 {
			ratio := med["ours1t"] / med["ours1"]
			goals = append(goals, fmt.Sprintf("  %-9s %-8s req/s %.0f / ours1 %.0f = %.2f >= 0.95: %-4s (per CPU-s: %.2f)",
				o, "ours1t", med["ours1t"], med["ours1"], ratio, yesNo(ratio >= 0.95), safeDiv(perCPU["ours1t"], perCPU["ours1"])))
		}
	}
	if len(goals) > 0 {
		fmt.Println("Goals for ours (ratio to the best of the others):")
		for _, g := range goals {
			fmt.Println(g)
		}
	}
	fmt.Println()
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

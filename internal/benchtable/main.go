// Command benchtable reads `go test -bench` output on stdin, echoes it, and
// prints comparison tables: every benchmark against a baseline (-baseline),
// and each ".../bypass" sub-benchmark against its ".../kernel" sibling.
// Ratios, not absolute times, are what a noisy shared machine can compare.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type result struct {
	name    string
	metrics map[string]float64 // unit -> value, e.g. "ns/op", "allocs/op", "req/s"
	units   []string
}

var cpuSuffix = regexp.MustCompile(`-\d+$`)

func parse(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return result{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return result{}, false
	}
	r := result{name: cpuSuffix.ReplaceAllString(f[0], ""), metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		r.metrics[f[i+1]] = v
		r.units = append(r.units, f[i+1])
	}
	return r, true
}

func main() {
	baseline := flag.String("baseline", "", "benchmark `name` (without -N) the others are compared with in ns/op")
	flag.Parse()
	var results []result
	byName := map[string]result{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		if r, ok := parse(line); ok {
			if _, seen := byName[r.name]; !seen {
				results = append(results, r)
			}
			byName[r.name] = r
		}
	}
	if len(results) == 0 {
		fmt.Println("\nbenchtable: no benchmark results read")
		os.Exit(1)
	}
	if *baseline == "" {
		// No baseline: one table of cost per operation, the figures a
		// per-segment target is stated in.
		fmt.Printf("\n%-52s %12s %10s %10s\n", "benchmark", "ns/op", "B/op", "allocs/op")
		for _, r := range results {
			if strings.HasSuffix(r.name, "/kernel") || strings.HasSuffix(r.name, "/bypass") {
				continue
			}
			if ns, ok := r.metrics["ns/op"]; ok {
				fmt.Printf("%-52s %12.1f %10.0f %10.0f\n", strings.TrimPrefix(r.name, "Benchmark"), ns, r.metrics["B/op"], r.metrics["allocs/op"])
			}
		}
	}
	if b, ok := byName[*baseline]; ok && b.metrics["ns/op"] > 0 {
		fmt.Printf("\n%-52s %12s %10s %12s\n", "benchmark", "ns/op", "allocs/op", "x "+strings.TrimPrefix(*baseline, "Benchmark"))
		for _, r := range results {
			ns, ok := r.metrics["ns/op"]
			if !ok || strings.Contains(r.name, "/kernel") || strings.Contains(r.name, "/bypass") {
				continue
			}
			fmt.Printf("%-52s %12.1f %10.0f %12.2f\n", strings.TrimPrefix(r.name, "Benchmark"), ns, r.metrics["allocs/op"], ns/b.metrics["ns/op"])
		}
	}
	var pairs []string
	for _, r := range results {
		if strings.HasSuffix(r.name, "/bypass") {
			if _, ok := byName[strings.TrimSuffix(r.name, "/bypass")+"/kernel"]; ok {
				pairs = append(pairs, strings.TrimSuffix(r.name, "/bypass"))
			}
		}
	}
	sort.Strings(pairs)
	if len(pairs) > 0 {
		fmt.Printf("\n%-40s %-14s %14s %14s %10s\n", "comparison", "metric", "kernel", "bypass", "bypass/kernel")
		for _, p := range pairs {
			k, y := byName[p+"/kernel"], byName[p+"/bypass"]
			for _, u := range y.units {
				kv, ok := k.metrics[u]
				if !ok || u == "B/op" || u == "allocs/op" || (kv == 0 && y.metrics[u] == 0) {
					continue
				}
				ratio := "-"
				if kv != 0 {
					ratio = fmt.Sprintf("%.2f", y.metrics[u]/kv)
				}
				fmt.Printf("%-40s %-14s %14.1f %14.1f %10s\n", strings.TrimPrefix(p, "Benchmark"), u, kv, y.metrics[u], ratio)
			}
		}
	}
}

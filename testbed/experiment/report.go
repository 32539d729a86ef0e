package experiment

import (
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ms is a duration in milliseconds, for tables and plots.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteSkew writes res into dir: skew.json (everything), skew.csv (a row
// per run), skew_series.csv (p50/p99/p99.9 per time bin), a PNG and an
// SVG per pattern of p99 over time, one of p99 per mode, and README.md,
// the report. command is what was run, for the report. It returns the
// files' names.
func WriteSkew(dir string, res *SkewResult, command string) ([]string, error) {
	command = recordCommand(&res.Command, command)
	return writeResult(dir, "skew.json", res, func(o *output) error {
		rows := [][]string{{"pattern", "mode", "p50_ms", "p99_ms", "p999_ms", "sent", "answered", "failed", "dropped", "moves", "conns_per_server"}}
		for _, r := range res.Runs {
			per := make([]string, len(r.PerServer))
			for i, n := range r.PerServer {
				per[i] = strconv.Itoa(n)
			}
			rows = append(rows, []string{r.Pattern, r.Mode, msCell(r.P50, r.Answered), msCell(r.P99, r.Answered), msCell(r.P999, r.Answered),
				i64(r.Sent), i64(r.Answered), i64(r.Failed), i64(r.Dropped), strconv.FormatUint(r.Moves, 10), strings.Join(per, "/")})
		}
		if err := o.csv("skew.csv", rows); err != nil {
			return err
		}
		rows = [][]string{{"pattern", "mode", "bin_start_s", "count", "p50_ms", "p99_ms", "p999_ms", "failed", "dropped"}}
		for _, r := range res.Runs {
			for _, b := range r.Series {
				rows = append(rows, []string{r.Pattern, r.Mode, f3(b.Start.Seconds()), i64(b.Count), msCell(b.P50, b.Count), msCell(b.P99, b.Count), msCell(b.P999, b.Count), i64(b.Failed), i64(b.Dropped)})
			}
		}
		if err := o.csv("skew_series.csv", rows); err != nil {
			return err
		}
		var plots []string
		for _, pat := range res.Config.Patterns {
			p := newPlot(fmt.Sprintf("%s: p99 request latency over time", pat), "time (s)", "p99 latency (ms, log)")
			logAxis(&p.Y)
			var lines []any
			for _, r := range res.Runs {
				if r.Pattern != pat {
					continue
				}
				var xy plotter.XYs
				for _, b := range r.Series {
					if b.Count > 0 {
						xy = append(xy, plotter.XY{X: b.Start.Seconds(), Y: max(ms(b.P99), 0.01)})
					}
				}
				if len(xy) > 0 {
					lines = append(lines, r.Mode, xy)
				}
			}
			if err := plotutil.AddLinePoints(p, lines...); err != nil {
				return err
			}
			p.Legend.Top = true
			p.Y.Max *= 10 // room above the lines for the legend
			png, err := o.plot(p, fmt.Sprintf("skew_%s_p99", pat), 18*vg.Centimeter, 10*vg.Centimeter)
			if err != nil {
				return err
			}
			plots = append(plots, png)
		}
		// p99 per mode: a column of points per pattern, one per mode (points,
		// not bars: a log axis has no zero for bars to stand on).
		p := newPlot("p99 request latency by skew and mode", "", "p99 latency (ms, log)")
		logAxis(&p.Y)
		modes := res.Config.Modes
		for i, m := range modes {
			var xy plotter.XYs
			for j, pat := range res.Config.Patterns {
				for _, r := range res.Runs {
					if r.Pattern == pat && r.Mode == m && r.Answered > 0 {
						off := 0.5 * (float64(i)/float64(max(len(modes)-1, 1)) - 0.5)
						xy = append(xy, plotter.XY{X: float64(j) + off, Y: max(ms(r.P99), 0.01)})
					}
				}
			}
			if len(xy) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(xy)
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color = plotutil.Color(i)
			sc.GlyphStyle.Shape = plotutil.Shape(i)
			sc.GlyphStyle.Radius = vg.Points(4)
			p.Add(sc)
			p.Legend.Add(m, sc)
		}
		p.Legend.Top = true
		p.Y.Max *= 10
		p.NominalX(res.Config.Patterns...)
		p.X.Min, p.X.Max = -0.5, float64(len(res.Config.Patterns))-0.5
		png, err := o.plot(p, "skew_p99_by_mode", 18*vg.Centimeter, 10*vg.Centimeter)
		if err != nil {
			return err
		}
		plots = append([]string{png}, plots...)
		return o.text("README.md", skewReport(res, command, plots))
	})
}

// recordCommand keeps the command that ran an experiment in its result
// and returns the report's account of it, in Markdown: the run's command,
// and the one that drew it again, if another did.
func recordCommand(ran *string, now string) string {
	if *ran == "" || *ran == now {
		*ran = now
		return "`" + now + "`"
	}
	return "`" + *ran + "` (plots and report drawn again by `" + now + "`)"
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// msCell is a latency quantile for a CSV cell, in ms: empty over no
// samples, where the histogram's 0 would read as a perfect run.
func msCell(d time.Duration, samples int64) string {
	if samples == 0 {
		return ""
	}
	return f3(ms(d))
}

// msText is msCell for a table: "-" over no samples.
func msText(d time.Duration, samples int64) string {
	if samples == 0 {
		return "-"
	}
	return strconv.FormatFloat(ms(d), 'f', 2, 64)
}
func i64(v int64) string { return strconv.FormatInt(v, 10) }

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows) //nolint:errcheck // Error below
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Headline is the hot-server pattern's p99 with migration off over the
// best policy's (not the oracle's), and that policy; ok is false when the
// runs are missing. A run that answered nothing, or lost over 1% of its
// requests (failed or dropped), has no p99 worth the name: a policy that
// answers a few requests fast must not win.
func (res *SkewResult) Headline() (ratio float64, best string, ok bool) {
	var off, bestP99 time.Duration
	for _, r := range res.Runs {
		if r.Pattern != "hot" || r.Answered == 0 || 100*(r.Failed+r.Dropped) > r.Sent {
			continue
		}
		switch r.Mode {
		case "off":
			off = r.P99
		case "oracle":
		default:
			if best == "" || r.P99 < bestP99 {
				best, bestP99 = r.Mode, r.P99
			}
		}
	}
	if off == 0 || bestP99 == 0 {
		return 0, "", false
	}
	return float64(off) / float64(bestP99), best, true
}

// SkewSummary is the runs as a table, with the headline.
func SkewSummary(res *SkewResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-13s %10s %10s %10s %8s %7s %7s %6s %s\n", "skew", "mode", "p50 ms", "p99 ms", "p99.9 ms", "answered", "failed", "dropped", "moves", "conns per server")
	for _, r := range res.Runs {
		fmt.Fprintf(&b, "%-6s %-13s %10s %10s %10s %8d %7d %7d %6d %v\n", r.Pattern, r.Mode, msText(r.P50, r.Answered), msText(r.P99, r.Answered), msText(r.P999, r.Answered), r.Answered, r.Failed, r.Dropped, r.Moves, r.PerServer)
	}
	if ratio, best, ok := res.Headline(); ok {
		fmt.Fprintf(&b, "hot server: p99 with migration off is %.1fx the best policy's (%s)\n", ratio, best)
	}
	return b.String()
}

func skewReport(res *SkewResult, command string, plots []string) string {
	c := res.Config
	var b strings.Builder
	fmt.Fprintf(&b, "# Skew: tail latency with and without load-aware migration\n\n")
	fmt.Fprintf(&b, "Run %s on %s, %s.\n\n", command, res.Start.UTC().Format(time.RFC3339), machine())
	fmt.Fprintf(&b, "The migration testbed (`testbed/migration.yaml`): Linux kernel clients, the capygen software switch (AF_XDP), three servers on the capygen stack. ")
	fmt.Fprintf(&b, "Each server has %d worker(s) for `GET /work?us=N` (at %v a request, a capacity of %.0f requests/s per server). ", c.Workers, c.Service, float64(c.Workers)/c.Service.Seconds())
	fmt.Fprintf(&b, "%d keep-alive connections carry %.0f requests/s, Poisson, open-loop, for %v; the first %v are not recorded. Latency runs from a request's scheduled arrival to its answer.\n\n", c.Conns, c.Rate, c.Duration, c.Warmup)
	fmt.Fprintf(&b, "- **hot**: every connection lands on s1, service %v.\n- **spike**: connections dealt out evenly; those first on server k take 6x the rate in the k-th third of the run.\n- **heavy**: dealt out evenly; Pareto service times (shape 1.5, mean %v, cut at 50x).\n\n", c.Service, c.Service)
	fmt.Fprintf(&b, "Modes: **off** (no migration), the policies of `runtime/policy` (flags in `testbed/experiment.PolicyArgs`), and the **oracle**, which deals every connection out evenly at accept time and never migrates.\n\n")
	if ratio, best, ok := res.Headline(); ok {
		fmt.Fprintf(&b, "**Headline: under the hot-server pattern, p99 with migration off is %.1fx the best policy's (%s).**\n\n", ratio, best)
	}
	b.WriteString("| skew | mode | p50 ms | p99 ms | p99.9 ms | answered | failed | dropped | moves | connections per server at the end |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d | %d | %d | %v |\n", r.Pattern, r.Mode, msText(r.P50, r.Answered), msText(r.P99, r.Answered), msText(r.P999, r.Answered), r.Answered, r.Failed, r.Dropped, r.Moves, r.PerServer)
	}
	b.WriteString("\n")
	for _, p := range plots {
		fmt.Fprintf(&b, "![%s](%s)\n\n", p, p)
	}
	fmt.Fprintf(&b, "Data: `skew.csv` (a row per run), `skew_series.csv` (per 250 ms bin), `skew.json` (everything). Took %v.\n", res.Took.Round(time.Second))
	return b.String()
}

// machine describes this machine for a report.
func machine() string {
	kernel := "?"
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version())
}

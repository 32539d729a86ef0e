package experiment

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/capygen/capygen/runtime/migrate"
)

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fig5Quantiles are the CSV's quantiles of Figure 5.
var fig5Quantiles = []float64{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999}

// WriteHostOverhead writes res into dir: hostoverhead.json, fig4.csv (the
// mean and p99 per step and path), fig4_host_steps.csv (the kernel's own
// TCP_REPAIR sub-steps), fig5.csv (host overhead quantiles per path),
// fig4 and fig5 as PNG and SVG, and README.md.
func WriteHostOverhead(dir string, res *HostOverheadResult, command string) ([]string, error) {
	command = recordCommand(&res.Command, command)
	return writeResult(dir, "hostoverhead.json", res, func(o *output) error {
		rows := [][]string{{"path", "step", "mean_us", "p99_us"}}
		for _, p := range res.Paths {
			for i, st := range Steps {
				rows = append(rows, []string{p.Path, st.Name, f3(us(p.StepMean[i])), f3(us(p.StepP99[i]))})
			}
			rows = append(rows, []string{p.Path, "host overhead", f3(us(p.Mean())), f3(us(migrate.Quantile(p.Host, 0.99)))})
		}
		if err := o.csv("fig4.csv", rows); err != nil {
			return err
		}
		rows = [][]string{{"path", "host_step", "mean_us"}}
		for _, p := range res.Paths {
			for _, name := range sortedKeys(p.HostSteps) {
				rows = append(rows, []string{p.Path, name, f3(us(p.HostSteps[name]))})
			}
		}
		if err := o.csv("fig4_host_steps.csv", rows); err != nil {
			return err
		}
		rows = [][]string{{"path", "quantile", "host_overhead_us"}}
		for _, p := range res.Paths {
			for _, q := range fig5Quantiles {
				rows = append(rows, []string{p.Path, f3(q), f3(us(migrate.Quantile(p.Host, q)))})
			}
		}
		if err := o.csv("fig5.csv", rows); err != nil {
			return err
		}

		// Figure 4: mean per step, a pair of bars per step.
		p := newPlot("Figure 4: mean server overhead per migration step", "", "mean (µs)")
		w := vg.Points(12)
		names := make([]string, len(Steps))
		for i, st := range Steps {
			names[i] = st.Name
		}
		for i, pr := range res.Paths {
			var v plotter.Values
			for _, d := range pr.StepMean {
				v = append(v, us(d))
			}
			b, err := plotter.NewBarChart(v, w)
			if err != nil {
				return err
			}
			b.Color = plotutil.Color(i)
			b.LineStyle.Width = 0
			b.Offset = w * vg.Length(float64(i)-float64(len(res.Paths)-1)/2)
			p.Add(b)
			p.Legend.Add(fmt.Sprintf("%s (host overhead mean %.1f µs)", pr.Path, us(pr.Mean())), b)
		}
		p.Legend.Top = true
		p.NominalX(names...)
		p.Y.Max *= 1.3
		fig4, err := o.plot(p, "fig4", 20*vg.Centimeter, 10*vg.Centimeter)
		if err != nil {
			return err
		}

		// Figure 5: the distribution of the host overhead.
		p = newPlot("Figure 5: distribution of the server overhead of a migration", "host overhead (µs, log)", "fraction of migrations")
		logAxis(&p.X)
		var lines []any
		for _, pr := range res.Paths {
			n := len(pr.Host)
			var xy plotter.XYs
			for i := range 200 {
				k := min(n-1, int(math.Round(float64(i)*float64(n-1)/199)))
				xy = append(xy, plotter.XY{X: math.Max(us(pr.Host[k]), 0.01), Y: float64(k+1) / float64(n)})
			}
			lines = append(lines, fmt.Sprintf("%s (%d migrations)", pr.Path, n), xy)
		}
		if err := plotutil.AddLines(p, lines...); err != nil {
			return err
		}
		p.Legend.Top, p.Legend.Left = true, true
		fig5, err := o.plot(p, "fig5", 18*vg.Centimeter, 10*vg.Centimeter)
		if err != nil {
			return err
		}
		return o.text("README.md", hostOverheadReport(res, command, []string{fig4, fig5}))
	})
}

func sortedKeys(m map[string]time.Duration) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// HostOverheadSummary is the result as a table.
func HostOverheadSummary(res *HostOverheadResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s", "step (mean µs)")
	for _, p := range res.Paths {
		fmt.Fprintf(&b, " %12s", p.Path)
	}
	b.WriteString("\n")
	for i, st := range Steps {
		fmt.Fprintf(&b, "%-22s", st.Name)
		for _, p := range res.Paths {
			fmt.Fprintf(&b, " %12.1f", us(p.StepMean[i]))
		}
		b.WriteString("\n")
	}
	for _, q := range []struct {
		name string
		f    func(p *PathResult) time.Duration
	}{
		{"host overhead mean", (*PathResult).Mean},
		{"host overhead p50", func(p *PathResult) time.Duration { return migrate.Quantile(p.Host, 0.5) }},
		{"host overhead p99", func(p *PathResult) time.Duration { return migrate.Quantile(p.Host, 0.99) }},
	} {
		fmt.Fprintf(&b, "%-22s", q.name)
		for i := range res.Paths {
			fmt.Fprintf(&b, " %12.1f", us(q.f(&res.Paths[i])))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%-22s", "migrations")
	for _, p := range res.Paths {
		fmt.Fprintf(&b, " %12d", len(p.Host))
	}
	b.WriteString("\n")
	return b.String()
}

func hostOverheadReport(res *HostOverheadResult, command string, plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Figures 4 and 5: the server overhead of a migration, capygen's stack and Linux TCP_REPAIR\n\n")
	fmt.Fprintf(&b, "Run %s on %s, %s.\n\n", command, res.Start.UTC().Format(time.RFC3339), machine())
	fmt.Fprintf(&b, "%d idle keep-alive HTTP connections from a Linux client move between the three servers of the testbed, in rounds, until %d have moved on each path: ", res.Config.Conns, res.Config.Migrations)
	b.WriteString("**bypass** is capygen's userspace stack over AF_XDP (`testbed/migration.yaml`), **kernel** the Linux kernel's sockets through TCP_REPAIR (`testbed/kernel.yaml`); the switch and the TCPMig engine are the same. ")
	b.WriteString("The host overhead of a migration is the origin's plus the target's work: the engine's handlers from entry to exit (the TCP_REPAIR calls included), timed on CLOCK_MONOTONIC, less the transmit of datagrams on both paths (the kernel's send system calls, which it times; the AF_XDP kick after the handlers). The steps are the phases inside those handlers.\n\n```\n")
	b.WriteString(HostOverheadSummary(res))
	b.WriteString("```\n\n")
	if k, y, ok := res.kernelAndBypass(); ok {
		fmt.Fprintf(&b, "**The kernel path's mean host overhead is %.1fx the bypass path's; at p99 %.1fx.**\n\n",
			us(k.Mean())/math.Max(us(y.Mean()), 1e-9), us(migrate.Quantile(k.Host, 0.99))/math.Max(us(migrate.Quantile(y.Host, 0.99)), 1e-9))
	}
	for _, p := range res.Paths {
		if len(p.HostSteps) == 0 {
			continue
		}
		fmt.Fprintf(&b, "The %s host's own sub-steps, mean over every time each ran (µs): ", p.Path)
		var parts []string
		for _, n := range sortedKeys(p.HostSteps) {
			parts = append(parts, fmt.Sprintf("%s %.1f", n, us(p.HostSteps[n])))
		}
		b.WriteString(strings.Join(parts, ", ") + ".\n\n")
	}
	for _, p := range plots {
		fmt.Fprintf(&b, "![%s](%s)\n\n", p, p)
	}
	fmt.Fprintf(&b, "Data: `fig4.csv`, `fig4_host_steps.csv`, `fig5.csv`, `hostoverhead.json`. Took %v.\n", res.Took.Round(time.Second))
	return b.String()
}

// kernelAndBypass finds the two paths by name, in whatever order the run
// had them: the ratio's numerator is the kernel's.
func (res *HostOverheadResult) kernelAndBypass() (kernel, bypass PathResult, ok bool) {
	var hk, hb bool
	for _, p := range res.Paths {
		switch p.Path {
		case "kernel":
			kernel, hk = p, true
		case "bypass":
			bypass, hb = p, true
		}
	}
	return kernel, bypass, hk && hb
}

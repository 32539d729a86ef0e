package experiment

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
	"github.com/capygen/capygen/testbed/loadgen"
)

// Fig1Config is the paper's Figure 1: the p99 request latency as the
// overhead of each migration grows, at two loads, while the servers move
// Migrations connections during each run.
type Fig1Config struct {
	// Delays are the injected overheads (capyrun serve
	// -inject-migration-delay), Rates the two loads in requests/s.
	Delays []time.Duration
	Rates  []float64
	// Conns keep-alive connections, dealt out evenly, for Duration (the
	// first Warmup not recorded); Migrations are asked of the servers at
	// an even pace over the recorded part.
	Conns            int
	Duration, Warmup time.Duration
	Migrations       int
	Service          time.Duration
	Workers          int
	Seed             uint64
	Binary           string                                                   `json:"-"`
	Progress         func(run, runs int, name string, done, of time.Duration) `json:"-"`
}

// DefaultFig1 is 0 to 500 µs at two loads (40% and 60% of the rack's
// nominal capacity), 10,000 migrations per point, as the paper: about
// 290 moves a second over 35 recorded seconds, about nine minutes in
// all on this project's machines.
func DefaultFig1() Fig1Config {
	return Fig1Config{
		Delays: []time.Duration{0, 100 * time.Microsecond, 200 * time.Microsecond, 300 * time.Microsecond, 400 * time.Microsecond, 500 * time.Microsecond},
		Rates:  []float64{1200, 1800}, Conns: 60, Duration: 37 * time.Second, Warmup: 2 * time.Second,
		Migrations: 10000, Service: time.Millisecond, Workers: 1, Seed: 1,
	}
}

// Fig1Point is one load at one injected overhead.
type Fig1Point struct {
	Rate           float64
	Delay          time.Duration
	P50, P99, P999 time.Duration
	Answered       int64
	Failed         int64
	// Moves are the migrations that moved during the run; Asked the ones
	// the driver asked for.
	Moves, Asked uint64
}

// Fig1Result is the whole experiment.
type Fig1Result struct {
	// Command is what ran it (kept when -from draws it again).
	Command string
	Config  Fig1Config
	Points  []Fig1Point
	Start   time.Time
	Took    time.Duration
}

// Empty reports whether res holds no points: a run that ended before its
// first has nothing to write over an earlier result.
func (res *Fig1Result) Empty() bool { return len(res.Points) == 0 }

// Fig1 runs every load at every injected overhead, each on a fresh testbed.
func Fig1(ctx context.Context, cfg Fig1Config) (*Fig1Result, error) {
	switch {
	case len(cfg.Delays) == 0 || len(cfg.Rates) == 0:
		return nil, fmt.Errorf("experiment: fig1 needs at least one delay and one rate")
	case cfg.Migrations < 1 || cfg.Conns < len(servers) || cfg.Workers < 1 || cfg.Service <= 0:
		return nil, fmt.Errorf("experiment: fig1 with %d migrations, %d connections, %d workers, service %v: want positive values and a connection per server", cfg.Migrations, cfg.Conns, cfg.Workers, cfg.Service)
	}
	for _, rate := range cfg.Rates {
		if err := checkLoad(rate, cfg.Duration, cfg.Warmup); err != nil {
			return nil, err
		}
	}
	for _, d := range cfg.Delays {
		if d < 0 || d > time.Second {
			return nil, fmt.Errorf("experiment: injected delay %v: want 0 to 1s", d)
		}
	}
	if err := testbed.CheckTools("ip"); err != nil {
		return nil, err
	}
	res := &Fig1Result{Config: cfg, Start: time.Now()}
	runs, n := len(cfg.Delays)*len(cfg.Rates), 0
	for _, rate := range cfg.Rates {
		for _, d := range cfg.Delays {
			n++
			pt, err := fig1Point(ctx, &cfg, rate, d, n, runs)
			if err != nil {
				return res, fmt.Errorf("experiment: fig1 at %.0f/s with %v injected: %w", rate, d, err)
			}
			res.Points = append(res.Points, *pt)
		}
	}
	res.Took = time.Since(res.Start)
	return res, nil
}

func fig1Point(ctx context.Context, cfg *Fig1Config, rate float64, delay time.Duration, n, of int) (*Fig1Point, error) {
	args := []string{"-workers", strconv.Itoa(cfg.Workers), "-inject-migration-delay", delay.String()}
	upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tb, err := testbed.Migration().UpWith(upCtx, testbed.Options{Binary: cfg.Binary, Args: map[string][]string{"server": args}})
	if err != nil {
		return nil, err
	}
	defer tb.Discard() //nolint:errcheck // the records were read or not needed; a failed tear-down is reported by the next Up's leftovers check
	dial := tb.DialContext("client")
	svc := "/work?us=" + strconv.FormatInt(cfg.Service.Microseconds(), 10)
	lg := loadgen.Config{Conns: cfg.Conns, Rate: rate, Duration: cfg.Duration, Warmup: cfg.Warmup, Seed: cfg.Seed, Host: "capygen",
		Dial: func(ctx context.Context, i int) (net.Conn, error) {
			return dial(ctx, "tcp4", net.JoinHostPort(servers[i%len(servers)].addr, "80"))
		},
		Path: func(*rand.Rand, int) string { return svc }}
	name := fmt.Sprintf("%.0f/s +%v", rate, delay)
	// The driver keeps the moves on an even pace over the recorded part:
	// whenever they fall behind, it asks each server to move one random
	// connection (at its next quiescent point), until Migrations have
	// moved. One at a time, not all at once: every move goes to the
	// switch's least-loaded server, and a burst would herd there.
	base, err := movedTotal(tb)
	if err != nil {
		return nil, err
	}
	var asked atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-time.After(cfg.Warmup):
		case <-stop:
			return
		}
		start, span := time.Now(), cfg.Duration-cfg.Warmup
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var moved uint64
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if i%10 == 0 {
				now, err := movedTotal(tb)
				if err != nil {
					continue
				}
				moved = now - base
				if cfg.Progress != nil && i%500 == 0 {
					cfg.Progress(n, of, name, time.Duration(moved)*time.Second, time.Duration(cfg.Migrations)*time.Second)
				}
			}
			if moved >= uint64(cfg.Migrations) {
				return
			}
			due := float64(cfg.Migrations) * min(1, float64(time.Since(start))/float64(span))
			if float64(moved) < due {
				for _, s := range servers {
					if rep, err := control(tb, s.name, migrate.ControlRequest{Op: "migrate", Conn: "random"}); err == nil {
						asked.Add(uint64(rep.Requested))
					}
				}
			}
		}
	}()
	lr, err := loadgen.Run(ctx, lg)
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	now, err := movedTotal(tb)
	if err != nil {
		return nil, err
	}
	return &Fig1Point{Rate: rate, Delay: delay, P50: lr.Quantile(0.5), P99: lr.Quantile(0.99), P999: lr.Quantile(0.999),
		Answered: lr.Answered, Failed: lr.Failed + lr.Dropped, Moves: now - base, Asked: asked.Load()}, nil
}

// Fig1Summary is the points as a table.
func Fig1Summary(res *Fig1Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %10s %10s %10s %10s %9s %7s %7s\n", "rate/s", "injected", "p50 ms", "p99 ms", "p99.9 ms", "answered", "failed", "moves")
	for _, p := range res.Points {
		fmt.Fprintf(&b, "%8.0f %10v %10s %10s %10s %9d %7d %7d\n", p.Rate, p.Delay, msText(p.P50, p.Answered), msText(p.P99, p.Answered), msText(p.P999, p.Answered), p.Answered, p.Failed, p.Moves)
	}
	return b.String()
}

// WriteFig1 writes res into dir: fig1.json, fig1.csv, fig1.png/svg (p99
// against the injected overhead, a line per load) and README.md.
func WriteFig1(dir string, res *Fig1Result, command string) ([]string, error) {
	command = recordCommand(&res.Command, command)
	return writeResult(dir, "fig1.json", res, func(o *output) error {
		rows := [][]string{{"rate_per_s", "injected_us", "p50_ms", "p99_ms", "p999_ms", "answered", "failed", "moves", "asked"}}
		for _, p := range res.Points {
			rows = append(rows, []string{f3(p.Rate), f3(us(p.Delay)), msCell(p.P50, p.Answered), msCell(p.P99, p.Answered), msCell(p.P999, p.Answered),
				i64(p.Answered), i64(p.Failed), strconv.FormatUint(p.Moves, 10), strconv.FormatUint(p.Asked, 10)})
		}
		if err := o.csv("fig1.csv", rows); err != nil {
			return err
		}
		p := newPlot("Figure 1: tail latency as the migration overhead grows", "injected overhead per migration (µs)", "p99 latency (ms)")
		var lines []any
		for _, rate := range res.Config.Rates {
			var xy plotter.XYs
			for _, pt := range res.Points {
				if pt.Rate == rate && pt.Answered > 0 { // no p99 without answers
					xy = append(xy, plotter.XY{X: us(pt.Delay), Y: ms(pt.P99)})
				}
			}
			lines = append(lines, fmt.Sprintf("%.0f requests/s", rate), xy)
		}
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return err
		}
		p.Legend.Top, p.Legend.Left = true, true
		p.Y.Min = 0
		if _, err := o.plot(p, "fig1", 18*vg.Centimeter, 10*vg.Centimeter); err != nil {
			return err
		}
		c := res.Config
		var b strings.Builder
		fmt.Fprintf(&b, "# Figure 1: tail latency as a function of the migration overhead\n\n")
		fmt.Fprintf(&b, "Run %s on %s, %s.\n\n", command, res.Start.UTC().Format(time.RFC3339), machine())
		fmt.Fprintf(&b, "The migration testbed's three servers each have %d worker(s) for `GET /work?us=%d` (capacity %.0f requests/s in all). ", c.Workers, c.Service.Microseconds(), float64(len(servers)*c.Workers)/c.Service.Seconds())
		fmt.Fprintf(&b, "%d keep-alive connections from a Linux client, dealt out evenly, carry open-loop Poisson load for %v (the first %v not recorded), while the servers are asked to move random connections until %d have moved. ", c.Conns, c.Duration, c.Warmup, c.Migrations)
		b.WriteString("Each migration's freeze busy-waits the injected overhead (`capyrun serve -inject-migration-delay`), with the connection frozen and the server's engine held, and charges it to the server's workers (the next request waits it out), as the paper's delays take a single-core server's time.\n\n```\n")
		b.WriteString(Fig1Summary(res))
		b.WriteString("```\n\n![fig1.png](fig1.png)\n\n")
		for _, p := range res.Points {
			if p.Moves < uint64(c.Migrations) {
				fmt.Fprintf(&b, "At %.0f requests/s with %v injected, %d of the %d migrations asked for moved in the run: a connection moves at its next quiescent point, after a response.\n\n", p.Rate, p.Delay, p.Moves, c.Migrations)
			}
		}
		fmt.Fprintf(&b, "Data: `fig1.csv`, `fig1.json`. Took %v.\n", res.Took.Round(time.Second))
		return o.text("README.md", b.String())
	})
}

// Package experiment runs the paper's experiments on the netns testbed
// and writes their results: CSV and JSON, PNG and SVG plots, and a short
// Markdown report. capyrun experiment is its command line.
package experiment

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
	"github.com/capygen/capygen/testbed/loadgen"
)

// Patterns are the skews, in the order they run.
var Patterns = []string{"hot", "spike", "heavy"}

// Modes are how the rack places and moves connections: off (no
// migration), a policy of runtime/policy, or the oracle (each connection
// placed perfectly at accept time, no migration).
var Modes = []string{"off", "threshold", "logistic", "request-rate", "oracle"}

// servers are the migration testbed's servers and their addresses.
var servers = []struct{ name, addr string }{{"s1", "10.77.0.11"}, {"s2", "10.77.0.12"}, {"s3", "10.77.0.13"}}

// SkewConfig is one skew experiment.
type SkewConfig struct {
	// Patterns and Modes to run (nil: all).
	Patterns, Modes []string
	// Conns keep-alive connections take Rate requests a second, Poisson,
	// for Duration; the first Warmup is not recorded.
	Conns            int
	Rate             float64
	Duration, Warmup time.Duration
	// Service is a request's service time (hot and spike); heavy draws
	// from a bounded Pareto with this mean.
	Service time.Duration
	// Workers is each server's workers (-workers): its capacity is
	// Workers/Service.
	Workers int
	// Seed draws the arrivals.
	Seed uint64
	// Binary is the capyrun that runs the testbed's processes (empty:
	// this executable, right for capyrun itself).
	Binary string `json:"-"`
	// Progress, if set, hears each run's start and each second of it.
	Progress func(run, runs int, name string, done, of time.Duration) `json:"-"`
	// Check, if set, is called with each run's testbed before it comes
	// down (tests scrape the servers' /metrics there).
	Check func(tb *testbed.Testbed, run SkewRun) error `json:"-"`
	// ServerArgs and SwitchArgs are added to the servers' and the
	// switch's command lines (-metrics, say).
	ServerArgs, SwitchArgs []string
}

// DefaultSkew is the experiment's default size on this project's
// two-core machines: about five minutes for all fifteen runs.
func DefaultSkew() SkewConfig {
	return SkewConfig{Conns: 30, Rate: 1500, Duration: 10 * time.Second, Warmup: 2 * time.Second,
		Service: time.Millisecond, Workers: 1, Seed: 1}
}

// SkewRun is one pattern under one mode.
type SkewRun struct {
	Pattern, Mode                   string
	P50, P99, P999                  time.Duration
	Sent, Answered, Failed, Dropped int64
	Errors                          []string
	// Moves are the connections the servers moved.
	Moves  uint64
	Series []loadgen.Bin
	// PerServer is each server's share of the connections at the end
	// (sessions on it).
	PerServer []int
}

// SkewResult is the whole experiment.
type SkewResult struct {
	// Command is what ran it (kept when -from draws it again).
	Command string
	Config  SkewConfig
	Runs    []SkewRun
	Start   time.Time
	Took    time.Duration
}

// Empty reports whether res holds no runs: a run that ended before its
// first has nothing to write over an earlier result.
func (res *SkewResult) Empty() bool { return len(res.Runs) == 0 }

// checkLoad checks a run's offered load, naming the flags that set it:
// these fail only inside the load generator otherwise, after a testbed
// came up (and a spike's thirds of a 2 ns run divide by zero).
func checkLoad(rate float64, duration, warmup time.Duration) error {
	switch {
	case !(rate > 0) || math.IsInf(rate, 0):
		return fmt.Errorf("experiment: -rate %v: want a positive, finite number of requests a second", rate)
	case duration < time.Second:
		return fmt.Errorf("experiment: -duration %v: want at least 1s", duration)
	case warmup < 0 || warmup >= duration:
		return fmt.Errorf("experiment: -warmup %v: want 0 <= warm-up < -duration (%v)", warmup, duration)
	case rate*duration.Seconds() < 1:
		return fmt.Errorf("experiment: -rate %v for -duration %v: want at least one request", rate, duration)
	}
	return nil
}

// Validate checks c, filling in the default patterns and modes; Skew
// does it first, and a caller may do it before anything else runs.
func (c *SkewConfig) Validate() error { return c.check() }

func (c *SkewConfig) check() error {
	if err := checkLoad(c.Rate, c.Duration, c.Warmup); err != nil {
		return err
	}
	if c.Patterns == nil {
		c.Patterns = Patterns
	}
	if c.Modes == nil {
		c.Modes = Modes
	}
	for _, p := range c.Patterns {
		if !slices.Contains(Patterns, p) {
			return fmt.Errorf("experiment: unknown skew pattern %q; use %s", p, strings.Join(Patterns, ", "))
		}
	}
	for _, m := range c.Modes {
		if !slices.Contains(Modes, m) {
			return fmt.Errorf("experiment: unknown mode %q; use %s", m, strings.Join(Modes, ", "))
		}
	}
	switch {
	case c.Conns < len(servers):
		return fmt.Errorf("experiment: %d connections; want at least one per server (%d)", c.Conns, len(servers))
	case c.Service <= 0 || c.Service > time.Second:
		return fmt.Errorf("experiment: service time %v; want 0 < service <= 1s", c.Service)
	case c.Workers < 1:
		return fmt.Errorf("experiment: %d workers per server; want at least 1", c.Workers)
	}
	return nil
}

// Skew runs every pattern under every mode, each on a fresh testbed.
func Skew(ctx context.Context, cfg SkewConfig) (*SkewResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := testbed.CheckTools("ip"); err != nil {
		return nil, err
	}
	res := &SkewResult{Config: cfg, Start: time.Now()}
	n := 0
	for _, p := range cfg.Patterns {
		for _, m := range cfg.Modes {
			n++
			if cfg.Progress != nil {
				cfg.Progress(n, len(cfg.Patterns)*len(cfg.Modes), p+"/"+m, 0, cfg.Duration)
			}
			run, err := skewRun(ctx, &cfg, p, m, n, len(cfg.Patterns)*len(cfg.Modes))
			if err != nil {
				return res, fmt.Errorf("experiment: skew %s under %s: %w", p, m, err)
			}
			res.Runs = append(res.Runs, *run)
		}
	}
	res.Took = time.Since(res.Start)
	return res, nil
}

// PolicyArgs are the capyrun serve flags of a mode.
func PolicyArgs(mode string) []string {
	switch mode {
	case "threshold":
		return []string{"-policy", "threshold", "-load-metric", "inflight", "-margin", "4", "-release", "1"}
	case "logistic":
		return []string{"-policy", "logistic", "-load-metric", "inflight", "-logistic-threshold", "6", "-logistic-steepness", "1"}
	case "request-rate":
		return []string{"-policy", "request-rate", "-load-metric", "rate", "-servers", strconv.Itoa(len(servers)), "-share-margin", "0.2"}
	}
	return nil
}

func skewRun(ctx context.Context, cfg *SkewConfig, pattern, mode string, n, of int) (*SkewRun, error) {
	args := append([]string{"-workers", strconv.Itoa(cfg.Workers), "-heartbeat", "5ms"}, PolicyArgs(mode)...)
	args = append(args, cfg.ServerArgs...)
	upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tb, err := testbed.Migration().UpWith(upCtx, testbed.Options{Binary: cfg.Binary,
		Args: map[string][]string{"server": args, "switch": cfg.SwitchArgs}})
	if err != nil {
		return nil, err
	}
	defer tb.Discard() //nolint:errcheck // the records were read or not needed; a failed tear-down is reported by the next Up's leftovers check
	lg := loadgen.Config{Conns: cfg.Conns, Rate: cfg.Rate, Duration: cfg.Duration, Warmup: cfg.Warmup, Seed: cfg.Seed,
		Host: "capygen", Bin: 250 * time.Millisecond}
	dial := tb.DialContext("client")
	// Placement: the hot pattern (unless the oracle places it) sends every
	// connection to s1; the others, and the oracle, deal them out evenly.
	place := func(i int) string {
		if pattern == "hot" && mode != "oracle" {
			return servers[0].addr
		}
		return servers[i%len(servers)].addr
	}
	lg.Dial = func(ctx context.Context, i int) (net.Conn, error) {
		return dial(ctx, "tcp4", net.JoinHostPort(place(i), "80"))
	}
	svc := cfg.Service.Microseconds()
	lg.Path = func(*rand.Rand, int) string { return "/work?us=" + strconv.FormatInt(svc, 10) }
	switch pattern {
	case "spike":
		// The connections first dealt to server k take 6x the others'
		// rate during the k-th third of the run.
		third := cfg.Duration / 3
		lg.Weight = func(at time.Duration, i int) float64 {
			if int(at/third)%len(servers) == i%len(servers) {
				return 6
			}
			return 1
		}
	case "heavy":
		lg.Path = func(rng *rand.Rand, _ int) string {
			return "/work?us=" + strconv.FormatInt(boundedPareto(rng, float64(svc)), 10)
		}
	}
	stop := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.Progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			start := time.Now()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					cfg.Progress(n, of, pattern+"/"+mode, time.Since(start), cfg.Duration)
				}
			}
		}()
	}
	run := &SkewRun{Pattern: pattern, Mode: mode}
	var statsErr error
	lg.BeforeClose = func() {
		// Where the connections are at the end, while they are open.
		for _, s := range servers {
			st, sessions, err := serverStats(tb, s.name)
			if err != nil {
				statsErr = err
				return
			}
			run.Moves += st.Moved
			run.PerServer = append(run.PerServer, sessions)
		}
	}
	lr, err := loadgen.Run(ctx, lg)
	close(stop)
	progressDone.Wait() // the next run's progress must not overlap it
	if err != nil {
		return nil, err
	}
	if statsErr != nil {
		return nil, statsErr
	}
	run.P50, run.P99, run.P999 = lr.Quantile(0.5), lr.Quantile(0.99), lr.Quantile(0.999)
	run.Sent, run.Answered, run.Failed, run.Dropped, run.Errors, run.Series = lr.Sent, lr.Answered, lr.Failed, lr.Dropped, lr.Errors, lr.Series
	if cfg.Check != nil {
		if err := cfg.Check(tb, *run); err != nil {
			return run, err
		}
	}
	return run, nil
}

// boundedPareto draws a service time in µs from a Pareto of shape 1.5
// whose mean, uncut, is the given one, cut at 50 times that mean (which
// takes about a tenth off the mean): most requests are short, a few are
// very long.
func boundedPareto(rng *rand.Rand, mean float64) int64 {
	const alpha = 1.5
	xmin := mean * (alpha - 1) / alpha
	x := xmin / math.Pow(1-rng.Float64(), 1/alpha)
	return int64(min(x, 50*mean))
}

// serverStats asks host's engine for its counters and sessions over its
// control socket.
func serverStats(tb *testbed.Testbed, host string) (migrate.Stats, int, error) {
	st, err := engineStats(tb, host)
	if err != nil {
		return st, 0, err
	}
	ses, err := control(tb, host, migrate.ControlRequest{Op: "sessions"})
	if err != nil {
		return st, 0, err
	}
	return st, len(ses.Conns), nil
}

// engineStats asks host's engine for its counters.
func engineStats(tb *testbed.Testbed, host string) (migrate.Stats, error) {
	rep, err := control(tb, host, migrate.ControlRequest{Op: "stats"})
	if err != nil || rep.Stats == nil {
		return migrate.Stats{}, err
	}
	return *rep.Stats, nil
}

// control sends one request to host's control socket (migrate.Control).
func control(tb *testbed.Testbed, host string, req migrate.ControlRequest) (*migrate.ControlReply, error) {
	c, err := testbed.DialControl(tb.Tag, host)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a unix socket
	rep, err := migrate.Control(c, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", host, req.Op, err)
	}
	return &rep, nil
}

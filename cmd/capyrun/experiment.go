package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/testbed/experiment"
)

func init() {
	prog.Register("experiment", "run one of the paper's experiments on the netns testbed and write its results and plots: skew, fig1, fig4 (and fig5)", runExperiment)
}

const experimentNames = "skew, fig1, fig4, fig5 (fig4's run: both figures)"

func runExperiment(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("capyrun experiment NAME [flags]: name one of: %s", experimentNames)
	}
	name, args := args[0], args[1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch name {
	case "skew":
		return runSkew(ctx, args)
	case "fig4", "fig5":
		return runHostOverhead(ctx, name, args)
	case "fig1":
		return runFig1(ctx, args)
	}
	return fmt.Errorf("capyrun experiment %q: no such experiment; name one of: %s", name, experimentNames)
}

// experimentFlags are the flags every experiment has: where it writes, and
// a saved run to write again.
type experimentFlags struct{ out, from *string }

func newExperimentFlags(fs *flag.FlagSet, dir, jsonName string) experimentFlags {
	return experimentFlags{
		out:  fs.String("out", dir, "the `directory` for the CSV, JSON, plots and report"),
		from: fs.String("from", "", "run nothing: write the plots and report again from this `"+jsonName+"`"),
	}
}

func parseExperimentFlags(fs *flag.FlagSet, args []string) error {
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// runExp runs an experiment, or reads a saved result (-from), prints its
// summary and writes its files into out. A run stopped early (an error,
// Ctrl-C) still writes what it finished, and its report says so.
func runExp[R any](f experimentFlags, command string, run func() (*R, error), summary func(*R) string,
	write func(dir string, res *R, command string) ([]string, error)) error {
	if err := os.MkdirAll(*f.out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	var res *R
	var runErr error
	if *f.from != "" {
		b, err := os.ReadFile(*f.from)
		if err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		if res, err = decodeResult[R](b); err != nil {
			// Nothing is written: the JSON in -out may be the run this
			// one would have overwritten with an empty result.
			return fmt.Errorf("-from %s: %w (want the JSON an earlier run of this experiment wrote)", *f.from, err)
		}
	} else {
		res, runErr = run()
		fmt.Fprintln(os.Stderr)
		if res == nil || runErr != nil && isEmpty(res) {
			return runErr // an earlier result in -out stays
		}
		if runErr != nil {
			command += fmt.Sprintf(" (stopped early: %v)", runErr)
		}
	}
	fmt.Print(summary(res))
	files, err := write(*f.out, res, command)
	if err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Printf("wrote %s\n", strings.Join(files, ", "))
	return runErr
}

// isEmpty reports whether res is a result with nothing measured in it.
func isEmpty(res any) bool {
	e, ok := res.(interface{ Empty() bool })
	return ok && e.Empty()
}

// decodeResult decodes a result an earlier run wrote. Another
// experiment's JSON has fields this one lacks, and a result with nothing
// in it (null, {}) would be written back over the real one in -out.
func decodeResult[R any](b []byte) (*R, error) {
	res := new(R)
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(res); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	if isEmpty(res) { // null and {} decode to an empty result too
		return nil, errors.New("the JSON holds no results")
	}
	return res, nil
}

func runSkew(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("capyrun experiment skew", flag.ContinueOnError)
	cfg := experiment.DefaultSkew()
	ef := newExperimentFlags(fs, "results/skew", "skew.json")
	patterns := fs.String("patterns", strings.Join(experiment.Patterns, ","), "the skew `patterns` to run: "+strings.Join(experiment.Patterns, ", "))
	modes := fs.String("modes", strings.Join(experiment.Modes, ","), "the `modes` to run each pattern under: "+strings.Join(experiment.Modes, ", "))
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "keep-alive `connections`")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests per second over all connections (Poisson)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "each run's length")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "the start of each run that is not recorded")
	fs.DurationVar(&cfg.Service, "service", cfg.Service, "a request's service time (heavy: the mean of a Pareto)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "each server's workers: its capacity is workers/service")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "the arrivals' seed")
	if err := parseExperimentFlags(fs, args); err != nil {
		return err
	}
	cfg.Patterns, cfg.Modes = strings.Split(*patterns, ","), strings.Split(*modes, ",")
	cfg.Progress = progress()
	return runExp(ef, "capyrun experiment skew "+strings.Join(args, " "),
		func() (*experiment.SkewResult, error) { return experiment.Skew(ctx, cfg) },
		experiment.SkewSummary, experiment.WriteSkew)
}

// runHostOverhead is Figures 4 and 5, which come from one run.
func runHostOverhead(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet("capyrun experiment "+name, flag.ContinueOnError)
	cfg := experiment.DefaultHostOverhead()
	ef := newExperimentFlags(fs, "results/hostoverhead", "hostoverhead.json")
	paths := fs.String("paths", strings.Join(experiment.Paths, ","), "the `paths` to measure: "+strings.Join(experiment.Paths, ", "))
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "idle keep-alive `connections` to move")
	fs.IntVar(&cfg.Migrations, "migrations", cfg.Migrations, "moves to measure on each path")
	if err := parseExperimentFlags(fs, args); err != nil {
		return err
	}
	cfg.Paths = strings.Split(*paths, ",")
	cfg.Progress = progress()
	return runExp(ef, "capyrun experiment "+name+" "+strings.Join(args, " "),
		func() (*experiment.HostOverheadResult, error) { return experiment.HostOverhead(ctx, cfg) },
		experiment.HostOverheadSummary, experiment.WriteHostOverhead)
}

func runFig1(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("capyrun experiment fig1", flag.ContinueOnError)
	cfg := experiment.DefaultFig1()
	ef := newExperimentFlags(fs, "results/fig1", "fig1.json")
	delays := fs.String("delays", joinDurations(cfg.Delays), "the injected overheads per migration")
	rates := fs.String("rates", joinFloats(cfg.Rates), "the loads, requests per second")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "keep-alive `connections`")
	fs.IntVar(&cfg.Migrations, "migrations", cfg.Migrations, "migrations per point")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "each run's length")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "the start of each run that is not recorded")
	fs.DurationVar(&cfg.Service, "service", cfg.Service, "a request's service time")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "each server's workers")
	if err := parseExperimentFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Delays, err = parseDurations(*delays); err != nil {
		return fmt.Errorf("-delays: %w", err)
	}
	if cfg.Rates, err = parseFloats(*rates); err != nil {
		return fmt.Errorf("-rates: %w", err)
	}
	cfg.Progress = progress()
	return runExp(ef, "capyrun experiment fig1 "+strings.Join(args, " "),
		func() (*experiment.Fig1Result, error) { return experiment.Fig1(ctx, cfg) },
		experiment.Fig1Summary, experiment.WriteFig1)
}

func joinDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

func joinFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: want durations like 0s,100us,500us", f)
		}
		out = append(out, d)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q: want positive numbers like 1200,2100", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// progress draws a bar per run on standard error.
func progress() func(run, runs int, name string, done, of time.Duration) {
	var bar *progressbar.ProgressBar
	cur := 0
	return func(run, runs int, name string, done, of time.Duration) {
		if run != cur || bar == nil {
			if bar != nil {
				bar.Finish() //nolint:errcheck // a terminal
				fmt.Fprintln(os.Stderr)
			}
			cur = run
			bar = progressbar.NewOptions64(int64(of/time.Second), progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(fmt.Sprintf("[%d/%d] %-20s", run, runs, name)),
				progressbar.OptionSetWidth(30), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(false))
		}
		bar.Set64(int64(done / time.Second)) //nolint:errcheck // a terminal
	}
}

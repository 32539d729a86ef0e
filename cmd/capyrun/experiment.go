package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/capygen/capygen/testbed/experiment"
)

func init() {
	prog.Register("experiment", "run one of the paper's experiments on the netns testbed and write its results and plots: skew", runExperiment)
}

func runExperiment(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("capyrun experiment NAME [flags]: name one of: skew")
	}
	name, args := args[0], args[1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch name {
	case "skew":
		return runSkew(ctx, args)
	}
	return fmt.Errorf("capyrun experiment %q: no such experiment; name one of: skew", name)
}

func runSkew(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("capyrun experiment skew", flag.ContinueOnError)
	cfg := experiment.DefaultSkew()
	out := fs.String("out", "results/skew", "the `directory` for the CSV, JSON, plots and report")
	patterns := fs.String("patterns", strings.Join(experiment.Patterns, ","), "the skew `patterns` to run: "+strings.Join(experiment.Patterns, ", "))
	modes := fs.String("modes", strings.Join(experiment.Modes, ","), "the `modes` to run each pattern under: "+strings.Join(experiment.Modes, ", "))
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "keep-alive `connections`")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests per second over all connections (Poisson)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "each run's length")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "the start of each run that is not recorded")
	fs.DurationVar(&cfg.Service, "service", cfg.Service, "a request's service time (heavy: the mean of a Pareto)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "each server's workers: its capacity is workers/service")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "the arrivals' seed")
	from := fs.String("from", "", "run nothing: write the plots and report again from this `skew.json`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Patterns, cfg.Modes = strings.Split(*patterns, ","), strings.Split(*modes, ",")
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	var res *experiment.SkewResult
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		res = new(experiment.SkewResult)
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("-from %s: %w (want the skew.json of an earlier run)", *from, err)
		}
	} else {
		cfg.Progress = progress()
		var err error
		res, err = experiment.Skew(ctx, cfg)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return err
		}
	}
	fmt.Print(experiment.SkewSummary(res))
	files, err := experiment.WriteSkew(*out, res, "capyrun experiment skew "+strings.Join(args, " "))
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", strings.Join(files, ", "))
	return nil
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

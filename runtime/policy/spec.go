package policy

import (
	"flag"
	"fmt"
	"time"

	"github.com/capygen/capygen/runtime/load"
)

// Spec is a policy as flags and experiments name it.
type Spec struct {
	// Name is none, threshold, logistic or request-rate.
	Name string
	// Metric is the load the server measures and reports: inflight, busy
	// or rate (load.ParseMetric).
	Metric string
	// threshold: migrate from Margin over the minimum until Release.
	Margin, Release float64
	// logistic: one half at Threshold, slope Steepness.
	Threshold, Steepness float64
	// request-rate: the target Share (0: an equal share) of Servers,
	// exceeded by the factor 1+ShareMargin.
	Share, ShareMargin float64
	Servers            int
	// Chooser is busiest, costliest or random.
	Chooser string
	// Every and Burst limit the moves; Cooldown keeps a moved connection
	// put.
	Every    time.Duration
	Burst    int
	Cooldown time.Duration
	// Period is how often the balancer decides.
	Period time.Duration
	// Seed drives the logistic draws and the random chooser.
	Seed uint64
}

// DefaultSpec is the flags' defaults: no policy; when one is named, its
// margins are in requests in flight, the default metric.
func DefaultSpec() Spec {
	return Spec{Name: "none", Metric: "inflight", Margin: 4, Release: 1, Threshold: 8, Steepness: 1,
		ShareMargin: 0.2, Chooser: "busiest", Every: 20 * time.Millisecond, Burst: 1,
		Cooldown: 300 * time.Millisecond, Period: 10 * time.Millisecond, Seed: 1}
}

// RegisterFlags adds the spec's flags to fs, with s's values as defaults.
func (s *Spec) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Name, "policy", s.Name, "migration `policy`: none, threshold, logistic or request-rate")
	fs.StringVar(&s.Metric, "load-metric", s.Metric, "the load measured and sent in heartbeats: "+load.Metrics())
	fs.Float64Var(&s.Margin, "margin", s.Margin, "threshold: migrate when the load exceeds the switch's minimum by this much, in the metric's units (busy: thousandths)")
	fs.Float64Var(&s.Release, "release", s.Release, "threshold: keep migrating until the excess falls to this")
	fs.Float64Var(&s.Threshold, "logistic-threshold", s.Threshold, "logistic: the load at which a connection moves with probability 1/2")
	fs.Float64Var(&s.Steepness, "logistic-steepness", s.Steepness, "logistic: the curve's slope k")
	fs.Float64Var(&s.Share, "share", s.Share, "request-rate: this server's target share of the rack's requests (0: 1/servers)")
	fs.Float64Var(&s.ShareMargin, "share-margin", s.ShareMargin, "request-rate: migrate while the share exceeds -share by this factor (0.2: 20%)")
	fs.IntVar(&s.Servers, "servers", s.Servers, "request-rate: the servers in the rack")
	fs.StringVar(&s.Chooser, "choose", s.Chooser, "which connection moves: busiest, costliest or random")
	fs.DurationVar(&s.Every, "move-every", s.Every, "at most one move per this `period` (with -move-burst saved up)")
	fs.IntVar(&s.Burst, "move-burst", s.Burst, "moves the rate limit saves up")
	fs.DurationVar(&s.Cooldown, "cooldown", s.Cooldown, "a connection that moved stays put this long (no ping-pong)")
	fs.DurationVar(&s.Period, "decide-every", s.Period, "how often the policy decides")
	fs.Uint64Var(&s.Seed, "policy-seed", s.Seed, "seed of the logistic draws and the random chooser")
}

// Enabled says whether the spec migrates at all.
func (s Spec) Enabled() bool { return s.Name != "none" && s.Name != "" }

// Build makes the spec's Balancer (without its Engine, which the caller
// sets once it exists: the engine's Config.Workload is the balancer's).
// maxState is the target's restore bound.
func (s Spec) Build(maxState int) (*Balancer, error) {
	metric, err := load.ParseMetric(s.Metric)
	if err != nil {
		return nil, fmt.Errorf("%w: -load-metric: %w", ErrConfig, err)
	}
	var p Policy
	switch s.Name {
	case "threshold":
		p, err = NewThreshold(s.Margin, s.Release)
	case "logistic":
		p, err = NewLogistic(s.Threshold, s.Steepness, s.Seed)
	case "request-rate":
		if metric != load.Rate {
			return nil, fmt.Errorf("%w: the request-rate policy compares request rates: use -load-metric rate, not %v", ErrConfig, metric)
		}
		p, err = NewRequestRate(s.Servers, s.Share, s.ShareMargin)
	default:
		return nil, fmt.Errorf("%w: unknown policy %q; use none, threshold, logistic or request-rate", ErrConfig, s.Name)
	}
	if err != nil {
		return nil, err
	}
	c, err := ParseChooser(s.Chooser, s.Seed)
	if err != nil {
		return nil, err
	}
	g, err := NewGovernor(p, c, s.Every, s.Burst, s.Cooldown, maxState)
	if err != nil {
		return nil, err
	}
	if s.Period <= 0 {
		return nil, fmt.Errorf("%w: -decide-every %v: want a positive period", ErrConfig, s.Period)
	}
	return &Balancer{Meter: load.NewMeter(0), Metric: metric, Governor: g, Period: s.Period}, nil
}

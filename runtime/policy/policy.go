// Package policy decides when a server sheds load by migrating a
// connection, and which connection goes.
//
// A Policy looks at the server's own load and the switch's reported
// minimum each period and says whether to move a connection now. A
// Governor wraps one with what every policy needs: a rate limit, a
// Chooser for the connection, and the two rules no policy may break: a
// connection that moved within the cooldown stays (no ping-pong), and
// one whose state would exceed the target's restore bound stays.
package policy

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ErrConfig is a policy's bad configuration.
var ErrConfig = errors.New("policy: bad configuration")

// Signal is what a policy decides on.
type Signal struct {
	// Now is the decision's monotonic time.
	Now time.Duration
	// Own is this server's load, in the metric its heartbeats carry.
	Own float64
	// Min is the least-loaded server's load, as the switch last reported
	// it in a heartbeat reply; HaveMin is false until a reply came.
	Min     float64
	HaveMin bool
}

// Policy decides whether to migrate one connection now.
type Policy interface {
	// Name is the policy's name, for flags, records and plots.
	Name() string
	// Decide is called once a period; true means move one connection.
	Decide(s Signal) bool
}

// Threshold migrates while the server's load exceeds the switch's minimum
// by Margin. Hysteresis: once it starts, it goes on until the excess falls
// to Release (below Margin), so a load that hovers at the margin does not
// flap.
type Threshold struct {
	Margin  float64
	Release float64
	on      bool
}

// NewThreshold checks the margins.
func NewThreshold(margin, release float64) (*Threshold, error) {
	if !(margin > 0) || !(release >= 0) || release >= margin || math.IsInf(margin, 0) {
		return nil, fmt.Errorf("%w: threshold -margin %v and -release %v: want a finite margin > 0 and 0 <= release < margin", ErrConfig, margin, release)
	}
	return &Threshold{Margin: margin, Release: release}, nil
}

// Name implements Policy.
func (*Threshold) Name() string { return "threshold" }

// Decide implements Policy.
func (t *Threshold) Decide(s Signal) bool {
	if !s.HaveMin {
		return false
	}
	excess := s.Own - s.Min
	if t.on {
		t.on = excess > t.Release
	} else {
		t.on = excess >= t.Margin
	}
	return t.on
}

// Logistic is Socket Launcher's policy: it migrates with a probability
// that follows a logistic curve of the load, one half at Threshold, with
// slope Steepness there. It never moves a connection to a server that is
// as loaded as this one.
type Logistic struct {
	Threshold float64
	Steepness float64 // the curve's k: p = 1 / (1 + e^(-k(load-Threshold)))
	rng       *rand.Rand
}

// NewLogistic checks the curve; seed drives the draws.
func NewLogistic(threshold, steepness float64, seed uint64) (*Logistic, error) {
	if !(threshold > 0) || !(steepness > 0) || math.IsInf(threshold, 0) || math.IsInf(steepness, 0) {
		return nil, fmt.Errorf("%w: -logistic-threshold %v and -logistic-steepness %v: want both > 0 and finite", ErrConfig, threshold, steepness)
	}
	return &Logistic{Threshold: threshold, Steepness: steepness, rng: rand.New(rand.NewPCG(seed, 0x5eed))}, nil
}

// Name implements Policy.
func (*Logistic) Name() string { return "logistic" }

// Probability is the chance of a migration at load.
func (l *Logistic) Probability(load float64) float64 {
	return 1 / (1 + math.Exp(-l.Steepness*(load-l.Threshold)))
}

// Decide implements Policy. Without a minimum from the switch there is
// no telling that another server is less loaded: no move, as for the
// other policies.
func (l *Logistic) Decide(s Signal) bool {
	if !s.HaveMin || s.Own <= s.Min {
		return false
	}
	return l.rng.Float64() < l.Probability(s.Own)
}

// RequestRate keeps this server's share of the rack's requests near
// Share. The load must be the request rate. The rack's total is not
// reported, only its minimum, so the share is bounded from above: every
// other server carries at least the minimum, so the share is at most
// own / (own + (servers-1) * min). It migrates while that bound exceeds
// Share by the factor 1+Margin.
type RequestRate struct {
	Share   float64
	Margin  float64
	Servers int
}

// NewRequestRate checks the share; share 0 is an equal share, 1/servers.
func NewRequestRate(servers int, share, margin float64) (*RequestRate, error) {
	if servers < 2 {
		return nil, fmt.Errorf("%w: request-rate needs the rack's size: -servers %d, want at least 2", ErrConfig, servers)
	}
	if share == 0 {
		share = 1 / float64(servers)
	}
	if !(share > 0) || share >= 1 || !(margin >= 0) || math.IsInf(margin, 0) {
		return nil, fmt.Errorf("%w: request-rate -share %v and -share-margin %v: want 0 < share < 1 and a finite margin >= 0", ErrConfig, share, margin)
	}
	return &RequestRate{Share: share, Margin: margin, Servers: servers}, nil
}

// Name implements Policy.
func (*RequestRate) Name() string { return "request-rate" }

// ShareBound is the most of the rack's requests this server can be
// taking at own, when the least-loaded server takes min.
func (r *RequestRate) ShareBound(own, min float64) float64 {
	if own <= 0 {
		return 0
	}
	return own / (own + float64(r.Servers-1)*max(min, 0))
}

// Decide implements Policy.
func (r *RequestRate) Decide(s Signal) bool {
	return s.HaveMin && s.Own > s.Min && r.ShareBound(s.Own, s.Min) > r.Share*(1+r.Margin)
}

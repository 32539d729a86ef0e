package policy

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Candidate is a connection a Chooser may pick.
type Candidate struct {
	// Index is the caller's handle for it.
	Index int
	// StateBytes is its queued bytes both ways (send and receive
	// buffers), the bulk of what its state would carry; -1 when unknown.
	StateBytes int
	// Moved is when it last arrived here or last left a server (zero
	// with Ever false: never).
	Moved time.Duration
	Ever  bool
	// Requests and Cost are its recent requests and their service time
	// (load.ConnLoad).
	Requests float64
	Cost     time.Duration
}

// Chooser picks the connection to move among eligible ones (never empty).
type Chooser interface {
	Name() string
	Choose(eligible []Candidate) Candidate
}

// Busiest picks the connection with the most recent requests.
type Busiest struct{}

// Name implements Chooser.
func (Busiest) Name() string { return "busiest" }

// Choose implements Chooser.
func (Busiest) Choose(c []Candidate) Candidate {
	return pick(c, func(a, b Candidate) bool { return a.Requests > b.Requests })
}

// Costliest picks the connection whose recent requests cost most.
type Costliest struct{}

// Name implements Chooser.
func (Costliest) Name() string { return "costliest" }

// Choose implements Chooser.
func (Costliest) Choose(c []Candidate) Candidate {
	return pick(c, func(a, b Candidate) bool { return a.Cost > b.Cost })
}

// pick is the first candidate no other beats (ties go to the earlier).
func pick(c []Candidate, better func(a, b Candidate) bool) Candidate {
	best := c[0]
	for _, x := range c[1:] {
		if better(x, best) {
			best = x
		}
	}
	return best
}

// Random picks a connection at random.
type Random struct{ rng *rand.Rand }

// NewRandom returns a seeded Random.
func NewRandom(seed uint64) *Random { return &Random{rand.New(rand.NewPCG(seed, 0xc0ffee))} }

// Name implements Chooser.
func (*Random) Name() string { return "random" }

// Choose implements Chooser.
func (r *Random) Choose(c []Candidate) Candidate { return c[r.rng.IntN(len(c))] }

// ParseChooser names a chooser: busiest, costliest or random.
func ParseChooser(name string, seed uint64) (Chooser, error) {
	switch name {
	case "busiest":
		return Busiest{}, nil
	case "costliest":
		return Costliest{}, nil
	case "random":
		return NewRandom(seed), nil
	}
	return nil, fmt.Errorf("%w: unknown chooser %q; use busiest, costliest or random", ErrConfig, name)
}

// Governor runs a Policy under a rate limit and picks the connection.
type Governor struct {
	Policy  Policy
	Chooser Chooser
	// Every and Burst are the rate limit: a token every Every, at most
	// Burst saved up. A decision to migrate spends one.
	Every time.Duration
	Burst int
	// Cooldown is how long a connection that moved stays put.
	Cooldown time.Duration
	// MaxState bounds a chosen connection's StateBytes: a target refuses
	// a state whose buffers exceed its restore bound
	// (migrate.Config.MaxRestoreBuffer each way), so capyrun passes twice
	// that. 0: no bound.
	MaxState int

	tokens   float64
	last     time.Duration
	started  bool
	eligible []Candidate
	// refundable: the last Step chose, so Refund may give its token back.
	refundable bool

	// Counters, for metrics.
	Decisions, Limited, NoneEligible, Chosen uint64
}

// NewGovernor checks the limits.
func NewGovernor(p Policy, c Chooser, every time.Duration, burst int, cooldown time.Duration, maxState int) (*Governor, error) {
	switch {
	case p == nil || c == nil:
		return nil, fmt.Errorf("%w: a governor needs a policy and a chooser", ErrConfig)
	case every <= 0 || burst < 1:
		return nil, fmt.Errorf("%w: rate limit of one move per %v, burst %d: want a positive -move-every and a -move-burst of at least 1", ErrConfig, every, burst)
	case cooldown < 0 || maxState < 0:
		return nil, fmt.Errorf("%w: -cooldown %v and the state bound %d must not be negative", ErrConfig, cooldown, maxState)
	}
	return &Governor{Policy: p, Chooser: c, Every: every, Burst: burst, Cooldown: cooldown, MaxState: maxState}, nil
}

// Step asks the policy and, when it says move and the rate limit allows,
// picks a connection among those conns lists. conns is called only then:
// a period that moves nothing costs O(1), whatever the connections. ok is
// false when nothing moves now.
func (g *Governor) Step(s Signal, conns func() []Candidate) (chosen Candidate, ok bool) {
	g.refundable = false
	g.refill(s.Now)
	if !g.Policy.Decide(s) {
		return Candidate{}, false
	}
	g.Decisions++
	if g.tokens < 1 {
		g.Limited++
		return Candidate{}, false
	}
	g.eligible = g.eligible[:0]
	for _, c := range conns() {
		if c.Ever && s.Now-c.Moved < g.Cooldown {
			continue // it just moved: no ping-pong
		}
		if g.MaxState > 0 && c.StateBytes > g.MaxState {
			continue // the target would refuse it
		}
		g.eligible = append(g.eligible, c)
	}
	if len(g.eligible) == 0 {
		g.NoneEligible++
		return Candidate{}, false
	}
	g.tokens--
	g.Chosen++
	g.refundable = true
	return g.Chooser.Choose(g.eligible), true
}

// Refund gives back the move token of the last choice when the move
// could not even be asked for (the connection had ended meanwhile): a
// move that never happened must not hold back the next one.
// It does nothing unless the last Step chose a connection.
func (g *Governor) Refund() {
	if g.refundable {
		g.refundable = false
		g.Chosen--
		g.tokens = min(float64(g.Burst), g.tokens+1)
	}
}

func (g *Governor) refill(now time.Duration) {
	if !g.started {
		g.started, g.last, g.tokens = true, now, float64(g.Burst)
		return
	}
	if now > g.last {
		g.tokens = min(float64(g.Burst), g.tokens+float64(now-g.last)/float64(g.Every))
		g.last = now
	}
}

package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func sig(now time.Duration, own, min float64) Signal {
	return Signal{Now: now, Own: own, Min: min, HaveMin: true}
}

func TestThresholdHysteresis(t *testing.T) {
	p, err := NewThreshold(10, 4)
	if err != nil {
		t.Fatal(err)
	}
	// A load trace against a minimum of 5: it rises past the margin, falls
	// back between release and margin (still on), then below release.
	trace := []struct {
		own  float64
		want bool
	}{
		{5, false}, {12, false}, {14.9, false}, {15, true}, {20, true},
		{12, true}, {9.5, true}, {9, false}, {14, false}, {15, true},
	}
	for i, s := range trace {
		if got := p.Decide(sig(time.Duration(i), s.own, 5)); got != s.want {
			t.Errorf("step %d: load %v over min 5: %v, want %v", i, s.own, got, s.want)
		}
	}
	if p.Decide(Signal{Own: 1000}) {
		t.Error("decided with no minimum reported yet")
	}
}

func TestLogistic(t *testing.T) {
	p, err := NewLogistic(32, 0.5, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Probability(32); got != 0.5 {
		t.Errorf("probability at the threshold %v, want 0.5", got)
	}
	if lo, hi := p.Probability(20), p.Probability(44); lo > 0.01 || hi < 0.99 {
		t.Errorf("probability 12 below and above the threshold: %v and %v", lo, hi)
	}
	// The draws follow the curve, and the seed.
	n := 0
	for i := range 10000 {
		if p.Decide(sig(time.Duration(i), 32, 0)) {
			n++
		}
	}
	if n < 4700 || n > 5300 {
		t.Errorf("%d of 10,000 at the threshold, want about 5,000", n)
	}
	a, _ := NewLogistic(32, 0.5, 7)
	b, _ := NewLogistic(32, 0.5, 7)
	for i := range 100 {
		if a.Decide(sig(0, 33, 0)) != b.Decide(sig(0, 33, 0)) {
			t.Fatalf("draw %d differs with equal seeds", i)
		}
	}
	// Never toward a server as loaded as this one.
	for range 100 {
		if p.Decide(sig(0, 100, 100)) {
			t.Fatal("decided to move to a server as loaded as this one")
		}
	}
	// Nor before the switch has reported any minimum.
	for range 100 {
		if p.Decide(Signal{Own: 100}) {
			t.Fatal("decided to move with no minimum reported")
		}
	}
}

func TestRequestRate(t *testing.T) {
	p, err := NewRequestRate(4, 0, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Share != 0.25 {
		t.Errorf("default share %v, want 1/4", p.Share)
	}
	for _, c := range []struct {
		own, min float64
		want     bool
	}{
		{100, 100, false}, // even
		{120, 100, false}, // share ≤ 120/420 = 0.286 < 0.3
		{140, 100, true},  // 140/440 = 0.318 > 0.3
		{50, 0, true},     // everything here
		{0, 0, false},
	} {
		if got := p.Decide(sig(0, c.own, c.min)); got != c.want {
			t.Errorf("own %v, min %v (share ≤ %.3f): %v, want %v", c.own, c.min, p.ShareBound(c.own, c.min), got, c.want)
		}
	}
}

func TestConstructorsRefuseBadConfigs(t *testing.T) {
	bad := []struct {
		name string
		err  error
	}{
		{"threshold margin 0", second(NewThreshold(0, 0))},
		{"threshold release = margin", second(NewThreshold(5, 5))},
		{"threshold negative release", second(NewThreshold(5, -1))},
		{"threshold release NaN", second(NewThreshold(4, math.NaN()))},
		{"threshold margin Inf", second(NewThreshold(math.Inf(1), 1))},
		{"logistic threshold Inf", second(NewLogistic(math.Inf(1), 1, 1))},
		{"request-rate margin NaN", second(NewRequestRate(3, 0.3, math.NaN()))},
		{"request-rate margin Inf", second(NewRequestRate(3, 0.3, math.Inf(1)))},
		{"logistic threshold 0", second(NewLogistic(0, 1, 1))},
		{"logistic steepness NaN", second(NewLogistic(1, math.NaN(), 1))},
		{"logistic steepness Inf", second(NewLogistic(1, math.Inf(1), 1))},
		{"request-rate one server", second(NewRequestRate(1, 0, 0))},
		{"request-rate share 1", second(NewRequestRate(3, 1, 0))},
		{"request-rate negative margin", second(NewRequestRate(3, 0.3, -1))},
		{"governor no policy", second(NewGovernor(nil, Busiest{}, time.Second, 1, 0, 0))},
		{"governor zero interval", second(NewGovernor(&Threshold{Margin: 1}, Busiest{}, 0, 1, 0, 0))},
		{"governor zero burst", second(NewGovernor(&Threshold{Margin: 1}, Busiest{}, time.Second, 0, 0, 0))},
		{"governor negative cooldown", second(NewGovernor(&Threshold{Margin: 1}, Busiest{}, time.Second, 1, -1, 0))},
		{"chooser name", second(ParseChooser("heaviest", 1))},
	}
	for _, c := range bad {
		if !errors.Is(c.err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", c.name, c.err)
		}
	}
}

func list(c []Candidate) func() []Candidate { return func() []Candidate { return c } }

func second[T any](_ T, err error) error { return err }

// always is a policy that always wants to move.
type always struct{}

func (always) Name() string       { return "always" }
func (always) Decide(Signal) bool { return true }

func TestGovernorRateLimit(t *testing.T) {
	g, err := NewGovernor(always{}, Busiest{}, 10*time.Millisecond, 3, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := []Candidate{{Index: 0}, {Index: 1}}
	moved := 0
	// A decision every millisecond for a second: the burst, then one per
	// 10 ms.
	for ms := range 1000 {
		if _, ok := g.Step(sig(time.Duration(ms)*time.Millisecond, 10, 0), list(conns)); ok {
			moved++
		}
	}
	if want := 3 + 99; moved != want {
		t.Errorf("%d moves in a second, want %d (burst 3, then one per 10 ms)", moved, want)
	}
	if g.Limited != 1000-uint64(moved) || g.Chosen != uint64(moved) {
		t.Errorf("counters: limited %d chosen %d", g.Limited, g.Chosen)
	}
}

// A choice whose move could not be asked for (the connection ended
// first) gives its token back: the next decision may move at once.
func TestGovernorRefund(t *testing.T) {
	g, err := NewGovernor(always{}, Busiest{}, time.Second, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := []Candidate{{Index: 0}}
	if _, ok := g.Step(sig(0, 10, 0), list(conns)); !ok {
		t.Fatal("the first decision chose nothing")
	}
	g.Refund()
	g.Refund() // one choice, one token back
	if _, ok := g.Step(sig(time.Millisecond, 10, 0), list(conns)); !ok {
		t.Fatal("after the refund the next decision chose nothing")
	}
	if _, ok := g.Step(sig(2*time.Millisecond, 10, 0), list(conns)); ok {
		t.Fatal("two refunds gave back two tokens for one choice")
	}
	g.Refund() // the last Step chose nothing: no token to give back
	if _, ok := g.Step(sig(3*time.Millisecond, 10, 0), list(conns)); ok {
		t.Fatal("a refund after a Step that chose nothing gave a token back")
	}
	if g.Chosen != 1 || g.Limited != 2 {
		t.Errorf("Chosen %d Limited %d, want 1 (one choice refunded) and 2", g.Chosen, g.Limited)
	}
}

func TestGovernorNoPingPongAndStateBound(t *testing.T) {
	g, err := NewGovernor(always{}, Busiest{}, time.Millisecond, 1, 100*time.Millisecond, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Second
	conns := []Candidate{
		{Index: 0, Requests: 50, Moved: now - 10*time.Millisecond, Ever: true}, // just arrived
		{Index: 1, Requests: 40, StateBytes: 1 << 20},                          // too big for the target
		{Index: 2, Requests: 30, Moved: now - time.Second, Ever: true},
		{Index: 3, Requests: 20},
	}
	c, ok := g.Step(sig(now, 10, 0), list(conns))
	if !ok || c.Index != 2 {
		t.Fatalf("chose %+v (%v), want connection 2: 0 moved 10 ms ago, 1 is over the state bound", c, ok)
	}
	// Nothing eligible: nothing moves, and the token is kept.
	if _, ok := g.Step(sig(now+time.Millisecond, 10, 0), list(conns[:2])); ok || g.NoneEligible != 1 {
		t.Fatalf("moved with nothing eligible (none-eligible %d)", g.NoneEligible)
	}
	if c, ok := g.Step(sig(now+time.Millisecond, 10, 0), list(conns)); !ok || c.Index != 2 {
		t.Errorf("the kept token did not serve the next step: %+v %v", c, ok)
	}
}

func TestChoosers(t *testing.T) {
	cs := []Candidate{{Index: 0, Requests: 5, Cost: 9 * time.Millisecond}, {Index: 1, Requests: 9, Cost: time.Millisecond}, {Index: 2, Requests: 9, Cost: 2 * time.Millisecond}}
	if c := (Busiest{}).Choose(cs); c.Index != 1 {
		t.Errorf("busiest chose %d, want 1 (the first with the most requests)", c.Index)
	}
	if c := (Costliest{}).Choose(cs); c.Index != 0 {
		t.Errorf("costliest chose %d, want 0", c.Index)
	}
	seen := map[int]bool{}
	r := NewRandom(1)
	for range 100 {
		seen[r.Choose(cs).Index] = true
	}
	if len(seen) != 3 {
		t.Errorf("random chose only %v in 100 draws", seen)
	}
}

// TestThresholdRackSettles runs the threshold policy on each server of a
// synthetic rack: a hot server holds every connection, each connection
// brings load 1, and a move takes effect at the next period (as a
// migration does). The rack must even out without a connection moving
// twice within the cooldown, and then stop moving.
func TestThresholdRackSettles(t *testing.T) {
	const servers, conns = 4, 40
	type conn struct {
		at    int
		moved time.Duration
		ever  bool
	}
	cs := make([]conn, conns)
	govs := make([]*Governor, servers)
	for i := range govs {
		p, _ := NewThreshold(3, 1)
		govs[i], _ = NewGovernor(p, NewRandom(uint64(i)), 5*time.Millisecond, 1, 200*time.Millisecond, 0)
	}
	moves, lastMove := 0, time.Duration(0)
	for step := range 2000 {
		now := time.Duration(step) * time.Millisecond
		loads := make([]float64, servers)
		for _, c := range cs {
			loads[c.at]++
		}
		min := loads[0]
		for _, l := range loads {
			min = math.Min(min, l)
		}
		type move struct{ c, to int }
		var todo []move
		for s, g := range govs {
			var cand []Candidate
			for i, c := range cs {
				if c.at == s {
					cand = append(cand, Candidate{Index: i, Moved: c.moved, Ever: c.ever})
				}
			}
			if c, ok := g.Step(sig(now, loads[s], min), list(cand)); ok {
				to := 0
				for i, l := range loads {
					if l == min {
						to = i
						break
					}
				}
				todo = append(todo, move{c.Index, to})
			}
		}
		for _, m := range todo {
			c := &cs[m.c]
			if c.ever && now-c.moved < 200*time.Millisecond {
				t.Fatalf("connection %d moved again %v after its last move", m.c, now-c.moved)
			}
			c.at, c.moved, c.ever = m.to, now, true
			moves++
			lastMove = now
		}
	}
	loads := make([]int, servers)
	for _, c := range cs {
		loads[c.at]++
	}
	for s, l := range loads {
		if l < conns/servers-3 || l > conns/servers+3 {
			t.Errorf("server %d ends with %d connections (%v), want %d±3", s, l, loads, conns/servers)
		}
	}
	if lastMove > time.Second {
		t.Errorf("still moving at %v (%d moves): the rack did not settle", lastMove, moves)
	}
}

// TestGovernorListsOnlyWhenMoving: a period the policy declines costs no
// walk over the connections.
func TestGovernorListsOnlyWhenMoving(t *testing.T) {
	p, _ := NewThreshold(5, 1)
	g, _ := NewGovernor(p, Busiest{}, time.Millisecond, 1, 0, 0)
	calls := 0
	conns := func() []Candidate { calls++; return []Candidate{{Index: 1}} }
	for i := range 100 {
		g.Step(sig(time.Duration(i)*time.Millisecond, 3, 1), conns)
	}
	if calls != 0 {
		t.Errorf("listed the connections %d times in 100 periods with nothing to move", calls)
	}
	if _, ok := g.Step(sig(time.Second, 10, 1), conns); !ok || calls != 1 {
		t.Errorf("a move listed the connections %d times (moved %v), want once", calls, ok)
	}
}

func TestSpecBuild(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Spec)
		want   string // "" builds
	}{
		{"threshold", func(s *Spec) { s.Name = "threshold" }, ""},
		{"logistic", func(s *Spec) { s.Name = "logistic"; s.Metric = "inflight" }, ""},
		{"request-rate", func(s *Spec) { s.Name = "request-rate"; s.Metric = "rate"; s.Servers = 3 }, ""},
		{"request-rate on inflight", func(s *Spec) { s.Name = "request-rate"; s.Servers = 3 }, "use -load-metric rate"},
		{"request-rate without -servers", func(s *Spec) { s.Name = "request-rate"; s.Metric = "rate" }, "-servers 0"},
		{"unknown policy", func(s *Spec) { s.Name = "greedy" }, `unknown policy "greedy"`},
		{"unknown metric", func(s *Spec) { s.Name = "threshold"; s.Metric = "cpu" }, `unknown metric "cpu"`},
		{"unknown chooser", func(s *Spec) { s.Name = "threshold"; s.Chooser = "oldest" }, `unknown chooser "oldest"`},
		{"zero period", func(s *Spec) { s.Name = "threshold"; s.Period = 0 }, "-decide-every 0s"},
	} {
		s := DefaultSpec()
		c.change(&s)
		b, err := s.Build(1 << 20)
		switch {
		case c.want == "" && (err != nil || b == nil || b.Governor.Policy.Name() != s.Name):
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrConfig)):
			t.Errorf("%s: error %v, want ErrConfig with %q", c.name, err, c.want)
		}
	}
	if DefaultSpec().Enabled() {
		t.Error("the default spec migrates; it should be none")
	}
}

package policy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capygen/capygen/runtime/load"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/tcp"
)

// Balancer runs a Governor on one server. Each period it closes the
// meter's period, publishes the load for the engine's heartbeats
// (Workload), asks the policy with the switch's reported minimum and,
// when it says move, asks the chosen session to migrate at its next
// quiescent point.
type Balancer struct {
	Engine   *migrate.Engine
	Meter    *load.Meter
	Metric   load.Metric
	Governor *Governor
	// Period is how often Run steps (0: 10 ms, the heartbeat's default).
	Period time.Duration

	value atomic.Uint32

	mu               sync.Mutex // Step's, so that Stats may be read from anywhere
	infos            []migrate.SessionInfo
	cands            []Candidate
	asked, askFailed uint64
}

// BalancerStats are a balancer's counters.
type BalancerStats struct {
	// Decisions, Limited and NoneEligible are the governor's: periods the
	// policy wanted a move, and of those the ones the rate limit or the
	// lack of an eligible connection stopped.
	Decisions, Limited, NoneEligible uint64
	// Asked is the moves asked of sessions; AskFailed the asks of sessions
	// that were gone.
	Asked, AskFailed uint64
	// Load is the last load measured, in the metric's units.
	Load uint32
}

// Stats returns the counters.
func (b *Balancer) Stats() BalancerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.Governor
	return BalancerStats{Decisions: g.Decisions, Limited: g.Limited, NoneEligible: g.NoneEligible,
		Asked: b.asked, AskFailed: b.askFailed, Load: b.value.Load()}
}

// Workload is the load the last step measured, in Metric's units: the
// engine's Config.Workload, so that heartbeats carry it.
func (b *Balancer) Workload() uint32 { return b.value.Load() }

// Step runs one period at now (load.Now's clock) and returns the
// connection it asked to move, if any.
func (b *Balancer) Step(now time.Duration) (tcp.ID, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.Meter.Tick(now).Value(b.Metric)
	b.value.Store(v)
	st := b.Engine.Stats()
	sig := Signal{Now: now, Own: float64(v), Min: float64(st.MinWorkload), HaveMin: st.HeartbeatReplies > 0}
	c, ok := b.Governor.Step(sig, func() []Candidate { return b.candidates(now) })
	if !ok {
		return tcp.ID{}, false
	}
	id := b.infos[c.Index].ID
	if err := b.Engine.Request(id); err != nil {
		b.askFailed++
		b.Governor.Refund()
		return tcp.ID{}, false
	}
	b.asked++
	return id, true
}

// candidates lists the engine's sessions as the governor sees them.
func (b *Balancer) candidates(now time.Duration) []Candidate {
	b.infos = b.Engine.SessionInfos(b.infos[:0])
	b.cands = b.cands[:0]
	wall := time.Now()
	for i, s := range b.infos {
		if s.Pending {
			continue // asked already: asking again would spend a move on it
		}
		c := Candidate{Index: i, StateBytes: s.Queued}
		if s.Restored {
			// Since is on the wall clock; the governor's is load.Now's.
			c.Moved, c.Ever = now-wall.Sub(s.Since), true
		}
		if s.Load != nil {
			c.Requests, c.Cost = s.Load.At(now)
		}
		b.cands = append(b.cands, c)
	}
	return b.cands
}

// Run steps every Period until ctx ends.
func (b *Balancer) Run(ctx context.Context) error {
	if b.Engine == nil || b.Meter == nil || b.Governor == nil {
		return fmt.Errorf("%w: a balancer needs an engine, a meter and a governor", ErrConfig)
	}
	period := b.Period
	if period <= 0 {
		period = 10 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			b.Step(load.Now())
		}
	}
}

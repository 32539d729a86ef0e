// Package load measures a server's workload for the switch's minimum-
// workload register and for the migration policies (runtime/policy).
//
// Every cost is O(1): a request's arrival and end are an atomic add and a
// short critical section each (the busy time's start and end), and closing
// a period (Tick) reads a few counters. Nothing walks the connections: the
// authors' per-poll scan over every connection halved their throughput at
// 193K connections.
package load

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metric names one measure of a server's workload.
type Metric uint8

// Metrics.
const (
	// InFlight is the requests that arrived and have not finished: in
	// service or queued behind one.
	InFlight Metric = iota
	// Busy is the fraction of the last period the server was working
	// (a request in flight, or event-loop work counted with AddBusy), in
	// thousandths.
	Busy
	// Rate is the request rate, an exponentially weighted moving average
	// in requests per second.
	Rate
	numMetrics
)

var metricNames = [numMetrics]string{"inflight", "busy", "rate"}

func (m Metric) String() string {
	if m < numMetrics {
		return metricNames[m]
	}
	return fmt.Sprintf("metric(%d)", m)
}

// Metrics lists every metric's name, for flags and errors.
func Metrics() string { return strings.Join(metricNames[:], ", ") }

// ParseMetric reads a metric's name.
func ParseMetric(s string) (Metric, error) {
	for i, n := range metricNames {
		if s == n {
			return Metric(i), nil
		}
	}
	return 0, fmt.Errorf("load: unknown metric %q; use one of %s", s, Metrics())
}

// DefaultHalfLife is Rate's default half-life.
const DefaultHalfLife = 100 * time.Millisecond

// Meter is one server's workload. Begin, End and AddBusy may be called
// from any goroutine; Tick closes a period and is meant for one caller
// (the server's runtime/policy Balancer, whose value heartbeats carry).
type Meter struct {
	inflight atomic.Int64
	arrivals atomic.Uint64
	busy     atomic.Int64 // nanoseconds of work since the last Tick

	// occupied is when inflight last left zero; occ guards it with the
	// 0<->1 transitions, so that time with several requests in flight
	// counts once.
	occ      sync.Mutex
	occupied time.Duration

	mu       sync.Mutex
	tau      float64 // Rate's time constant, in seconds
	last     time.Duration
	ticked   bool
	arrived  uint64 // arrivals at the last Tick
	rate     float64
	busyFrac float64
}

// NewMeter returns a meter whose request rate forgets with halfLife (0:
// DefaultHalfLife).
func NewMeter(halfLife time.Duration) *Meter {
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	return &Meter{tau: halfLife.Seconds() / math.Ln2}
}

// Begin counts a request's arrival at now (load.Now's clock).
func (m *Meter) Begin(now time.Duration) {
	m.arrivals.Add(1)
	m.occ.Lock()
	if m.inflight.Add(1) == 1 {
		m.occupied = now
	}
	m.occ.Unlock()
}

// End counts a request's end at now, one for each Begin.
func (m *Meter) End(now time.Duration) {
	m.occ.Lock()
	defer m.occ.Unlock()
	switch n := m.inflight.Add(-1); {
	case n < 0:
		m.inflight.Add(1) // an End without its Begin: never below zero
	case n == 0 && now > m.occupied:
		m.busy.Add(int64(now - m.occupied))
	}
}

// AddBusy counts d of the event loop's work.
func (m *Meter) AddBusy(d time.Duration) {
	if d > 0 {
		m.busy.Add(int64(d))
	}
}

// Sample is the workload at the end of a period.
type Sample struct {
	InFlight int64
	Busy     float64 // fraction of the period, 0 to 1
	Rate     float64 // requests per second
}

// Tick closes the period that ends at now (a monotonic time) and returns
// the workload. The first call starts the first period: its Busy and Rate
// are 0.
func (m *Meter) Tick(now time.Duration) Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	arrived := m.arrivals.Load()
	m.occ.Lock()
	if m.inflight.Load() > 0 && now > m.occupied {
		// Still working: the period takes its share, the next the rest.
		m.busy.Add(int64(now - m.occupied))
		m.occupied = now
	}
	m.occ.Unlock()
	busy := m.busy.Swap(0)
	if m.ticked && now > m.last {
		dt := (now - m.last).Seconds()
		inst := float64(arrived-m.arrived) / dt
		// A period of any length weighs what its length says: the EWMA
		// of a rate sampled at uneven times (heartbeats have jitter).
		alpha := 1 - math.Exp(-dt/m.tau)
		m.rate += alpha * (inst - m.rate)
		m.busyFrac = min(1, float64(busy)/float64(now-m.last))
	}
	if !m.ticked || now > m.last {
		m.last, m.arrived, m.ticked = now, arrived, true
	}
	return Sample{InFlight: m.inflight.Load(), Busy: m.busyFrac, Rate: m.rate}
}

// Value is the sample in metric's units as heartbeats carry it: requests,
// thousandths of the period, requests per second; rounded and saturated
// to 32 bits.
func (s Sample) Value(metric Metric) uint32 {
	var v float64
	switch metric {
	case InFlight:
		v = float64(s.InFlight)
	case Busy:
		v = s.Busy * 1000
	case Rate:
		v = s.Rate
	}
	switch {
	case !(v > 0): // and NaN
		return 0
	case v >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(math.Round(v))
}

package load

import (
	"math"
	"sync"
	"time"
)

// ConnLoad is one connection's recent requests and their cost, which a
// policy reads to choose the connection to move. Both decay with the same
// half-life, lazily: an update or a read is O(1), whatever the time
// between them.
type ConnLoad struct {
	mu       sync.Mutex
	tau      float64 // seconds
	at       time.Duration
	requests float64
	cost     float64 // seconds of service
}

// NewConnLoad returns a tracker that forgets with halfLife (0:
// DefaultHalfLife).
func NewConnLoad(halfLife time.Duration) *ConnLoad {
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	return &ConnLoad{tau: halfLife.Seconds() / math.Ln2}
}

// decay ages the figures to now. c.mu is held.
func (c *ConnLoad) decay(now time.Duration) {
	if now > c.at {
		k := math.Exp(-(now - c.at).Seconds() / c.tau)
		c.requests *= k
		c.cost *= k
		c.at = now
	}
}

// Served counts a request that took cost, finished at now.
func (c *ConnLoad) Served(now time.Duration, cost time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decay(now)
	c.requests++
	c.cost += max(0, cost.Seconds())
}

// At returns the decayed request count and service time at now.
func (c *ConnLoad) At(now time.Duration) (requests float64, cost time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decay(now)
	return c.requests, time.Duration(c.cost * float64(time.Second))
}

// start anchors Now.
var start = time.Now()

// Now is the process's monotonic time, the clock ConnLoad and Meter are
// meant to be given.
func Now() time.Duration { return time.Since(start) }

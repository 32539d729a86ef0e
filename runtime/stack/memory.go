package stack

import (
	"runtime/debug"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// Memory after a burst. Linux frees a socket's memory when the socket
// goes; a Go process frees a connection's memory to its heap, and gives
// the heap back to the OS only after a collection that an idle server
// may not run for minutes. After a burst of short connections (20,000
// requests leave 20,000 in TIME-WAIT for 60 s) the stack therefore hands
// the memory back itself once most of them are gone: when at least
// releaseMinReaped connections were reaped and fewer than half of the
// peak remain since the last release, at most every releaseEvery.
const (
	releaseMinReaped = 1024
	releaseEvery     = 10 * time.Second
)

// memoryRelease is that policy's state; s.mu guards it.
type memoryRelease struct {
	peak, reaped int
	// next is the earliest time of the next release. Its zero value
	// allows one at once, and a release at time 0 (the simulator's clock
	// starts there) still holds the next one off.
	next    tcp.Time
	running bool
}

// noteConnAdded tracks the peak number of connections.
func (s *Stack) noteConnAdded() {
	s.mem.peak = max(s.mem.peak, len(s.conns))
}

// noteConnRemoved counts a reaped connection.
func (s *Stack) noteConnRemoved() { s.mem.reaped++ }

// maybeReleaseMemory runs on every Advance: when a burst is over it
// returns the freed memory to the OS (runtime/debug.FreeOSMemory: a
// collection, then every free page released) on a goroutine of its own,
// outside s.mu. Checked on the clock rather than on each removal, so that
// the connections reaped after one release (the rest of a TIME-WAIT
// wave) are released releaseEvery later.
func (s *Stack) maybeReleaseMemory(now tcp.Time) {
	m := &s.mem
	if s.cfg.KeepMemory || m.running || m.reaped < releaseMinReaped || 2*len(s.conns) > m.peak ||
		now < m.next {
		return
	}
	m.running, m.next, m.reaped, m.peak = true, now+releaseEvery, 0, len(s.conns)
	s.ctr.MemoryReleases++
	pool := s.cfg.TCP.Buffers
	go func() {
		if pool != nil {
			pool.Drain() // the pool's arrays are a burst's leftovers too
		}
		debug.FreeOSMemory()
		s.mu.Lock()
		m.running = false
		s.mu.Unlock()
	}()
}

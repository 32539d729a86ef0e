package softswitch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// ErrRunning is returned by a second Run while one is active.
var ErrRunning = errors.New("softswitch: Run is already running")

// Run drives the switch on real links until ctx ends (it then returns
// nil) or a port's endpoint fails (it returns that error, naming the
// port). When every port's endpoint has a descriptor (PollEndpoint, as
// AF_XDP's have), one goroutine serves them all: it drains every ring,
// spins for Config.Spin, then sleeps in one poll over the ports (serve).
// Otherwise each port has a goroutine in its endpoint's Receive. Either
// way the wait ends in a sleep, not a busy spin, the right trade on a
// 2-core machine where a spinning switch would starve the servers and
// the kernel's softirq (DESIGN.md §6). One more goroutine releases frames
// held by delay faults. Time is monotonic and continues from the latest
// time the switch was given. The caller closes the endpoints after Run
// returns.
func (s *Switch) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	start, base := time.Now(), s.now
	clock := func() time.Duration { return base + time.Since(start) }
	s.clock = clock
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.clock = false, nil
		s.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(s.list))
	var wg sync.WaitGroup
	// serveWith runs f in a goroutine; its error ends Run.
	serveWith := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	if fds, ok := s.pollFDs(); ok {
		serveWith(func() error { return s.serve(ctx, fds, clock) })
	} else {
		for _, p := range s.list {
			if w, ok := p.ep.(link.Waker); ok {
				// ctx's end ends a Receive rather than waiting out
				// PollInterval.
				defer context.AfterFunc(ctx, w.Wake)()
			}
			serveWith(func() error { return s.receive(ctx, p, clock) })
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.timers(ctx, clock)
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// receive is port p's loop: every frame goes through the core under the
// lock, and what the batch queued for egress is flushed once it drained.
func (s *Switch) receive(ctx context.Context, p *port, clock func() time.Duration) error {
	in := s.ingressOn(p, clock)
	for ctx.Err() == nil {
		n, err := p.ep.Receive(s.cfg.PollInterval, in)
		if n > 0 {
			s.mu.Lock()
			s.flush()
			s.mu.Unlock()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("softswitch: port %s: receive: %w", p.name, err)
		}
	}
	return nil
}

// timers releases held frames when they are due. hold signals s.wake
// when a frame becomes the earliest, so the sleep is never too long.
func (s *Switch) timers(ctx context.Context, clock func() time.Duration) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if at, ok := s.NextDeadline(); ok {
			wait = at - clock()
		}
		if wait <= 0 {
			s.Advance(clock())
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// ingressOn is the Receive callback for port p: every frame goes through
// the core under the lock, at the clock's time.
func (s *Switch) ingressOn(p *port, clock func() time.Duration) func([]byte) {
	return func(frame []byte) {
		s.mu.Lock()
		s.setNow(clock())
		s.ingress(p.id, frame)
		s.mu.Unlock()
	}
}

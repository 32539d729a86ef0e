package softswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// PollEndpoint is an endpoint whose arriving frames make a descriptor
// poll readable, and whose Receive(0, fn) drains what waits without
// sleeping: link.XDP is one. A switch whose ports all are is served by
// one goroutine (serve) instead of one per port.
type PollEndpoint interface {
	PollFD() int
}

// pollFDs returns the ports' descriptors, in s.list's order, when every
// port has one.
func (s *Switch) pollFDs() ([]int, bool) {
	fds := make([]int, 0, len(s.list))
	for _, p := range s.list {
		pe, ok := p.ep.(PollEndpoint)
		if !ok {
			return nil, false
		}
		fds = append(fds, pe.PollFD())
	}
	return fds, true
}

// serve is Run's loop for ports with descriptors. One goroutine drains
// every port's ring, flushes what the frames queued, and sleeps in one
// poll over all the ports. With a goroutine per port, each sleeping in
// its own poll, a frame that crossed the switch woke two threads and
// handed the Go scheduler's P between them, on a machine whose two CPUs
// the servers and clients share; the switch stands in for hardware,
// which never waits for a CPU.
func (s *Switch) serve(ctx context.Context, fds []int, clock func() time.Duration) error {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("softswitch: eventfd for Run's wake-up: %w", err)
	}
	defer unix.Close(wake)
	// ctx's end wakes the poll rather than waiting out PollInterval.
	defer context.AfterFunc(ctx, func() {
		one := [8]byte{1}
		unix.Write(wake, one[:]) //nolint:errcheck // the counter cannot overflow: one write per Run
	})()
	pfds := make([]unix.PollFd, len(fds)+1)
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	pfds[len(fds)] = unix.PollFd{Fd: int32(wake), Events: unix.POLLIN}
	ins := make([]func([]byte), len(s.list))
	for i, p := range s.list {
		ins[i] = s.ingressOn(p, clock)
	}
	var idle time.Time // when the rings were last found empty, while spinning
	failed := -1       // the port whose descriptor the last poll found failed
	for ctx.Err() == nil {
		n := 0
		for i, p := range s.list {
			k, err := p.ep.Receive(0, ins[i])
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("softswitch: port %s: receive: %w", p.name, err)
			}
			n += k
		}
		if n > 0 {
			s.mu.Lock()
			kicked := s.flush()
			s.mu.Unlock()
			idle = time.Time{}
			if kicked > 0 {
				yieldCPU()
			}
			continue
		}
		// Spin before sleeping: the next frame often follows within
		// microseconds (an answer through the switch), and the rings are
		// shared memory, checked without a system call.
		if s.cfg.Spin > 0 {
			if idle.IsZero() {
				idle = time.Now()
			}
			if time.Since(idle) < s.cfg.Spin {
				continue
			}
		}
		idle = time.Time{}
		bad, err := s.pollPorts(pfds, wake)
		if err != nil {
			return err
		}
		if bad >= 0 && bad == failed {
			// The drain in between found nothing wrong with the endpoint
			// (a closed one reports ErrClosed, by the port's name).
			return fmt.Errorf("softswitch: port %s: poll: descriptor %d failed (revents %#x) while its endpoint is open",
				s.list[bad].name, pfds[bad].Fd, pfds[bad].Revents)
		}
		failed = bad
	}
	return nil
}

// pollPorts sleeps until a port's descriptor or the wake-up eventfd is
// readable, or PollInterval passes. A frame that arrived after the last
// drain keeps its descriptor readable, so none waits for the interval.
// It returns the index of a port whose descriptor failed (POLLERR or
// POLLNVAL: its endpoint was closed under Run), or -1.
func (s *Switch) pollPorts(pfds []unix.PollFd, wake int) (int, error) {
	ts := unix.NsecToTimespec(int64(s.cfg.PollInterval))
	if _, err := unix.Ppoll(pfds, &ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
		return -1, fmt.Errorf("softswitch: poll on the ports: %w", err)
	}
	last := len(pfds) - 1
	if pfds[last].Revents&unix.POLLIN != 0 {
		var b [8]byte
		unix.Read(wake, b[:]) //nolint:errcheck // resets the counter; only ctx's end writes it
	}
	for i := range pfds[:last] {
		if pfds[i].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return i, nil
		}
	}
	return -1, nil
}

// yieldCPU lets the tasks the kicks just woke run before the loop goes
// on. The kernel wakes a receiver on the waker's CPU, here the switch's,
// and left alone the switch kept that CPU through its next kicks and its
// spin while the server it had handed a frame to waited (about 40 µs in
// scheduler traces, with the other vCPU idle). A hardware switch never
// takes a CPU from the servers; this is as near as the stand-in comes.
// Measured on BenchmarkMigrationTestbed, four rounds alternating with the
// build without it: a single move's end to end 373-405 µs against 458-482
// (2.6-2.9 times the RTT against 2.8-3.2), the RTT unchanged; rounds of
// 100 moves at once, and moves of connections with data queued, about 7%
// slower at p50 (up to 19%), where the switch has more to do than wait.
func yieldCPU() {
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) //nolint:errcheck // sched_yield always succeeds on Linux
}

package app

import (
	"sync/atomic"
	"time"
)

// workers runs connections' serve loops on goroutines that outlive them.
// A server whose connections migrate in thousands of times a second
// otherwise starts a goroutine for each, whose stack grows (copied, on
// freshly faulted pages) through the same deep request path every time:
// about 5% of a testbed server's CPU samples while idle connections moved.
// A worker that finishes a connection waits idle for the next one, and
// exits after idle without one; nothing is ever queued behind a busy one.
type workers struct {
	work chan func()
	idle time.Duration
	// started and exited count the workers, for tests.
	started, exited atomic.Uint64
}

// workerIdle is how long an idle worker waits for another connection.
const workerIdle = time.Second

func newWorkers(idle time.Duration) *workers {
	return &workers{work: make(chan func()), idle: idle}
}

// run runs f on an idle worker, or on a new one if none is idle.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
	default:
		w.started.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	defer w.exited.Add(1)
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(w.idle)
		select {
		case f = <-w.work:
		case <-t.C:
			return
		}
	}
}

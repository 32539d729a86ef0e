package app

import (
	"sync/atomic"
	"testing"
	"time"
)

// Connections served one after another run on the same worker, several
// at once on as many, and idle workers exit.
func TestWorkersReuseAndExit(t *testing.T) {
	w := newWorkers(200 * time.Millisecond)
	var ran atomic.Int32
	for range 50 {
		done := make(chan struct{})
		w.run(func() { ran.Add(1); close(done) })
		<-done
		time.Sleep(2 * time.Millisecond) // the worker gets back to waiting
	}
	// A goroutine per connection would be 50; a worker that was slow to
	// get back to waiting may be passed over now and then.
	if started := w.started.Load(); ran.Load() != 50 || started > 5 {
		t.Fatalf("50 connections one after another ran %d times on %d workers, want 50 on 1", ran.Load(), started)
	}
	// Five blocked at once all run: none waits behind another. How many of
	// them reuse idle workers depends on how many the first loop left.
	release := make(chan struct{})
	var running atomic.Int32
	for range 5 {
		w.run(func() { running.Add(1); <-release })
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := running.Load(); n != 5 {
		t.Errorf("5 connections at once: %d running after 5 s, want 5: none waits behind another", n)
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); w.exited.Load() < w.started.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if live := w.started.Load() - w.exited.Load(); live > 0 {
		t.Errorf("%d workers still run 5 s after their last connection; they should exit after 200 ms idle", live)
	}
}

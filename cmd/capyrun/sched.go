package main

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// maxLoopPriority is SCHED_FIFO's highest priority on Linux.
const maxLoopPriority = 99

// realtimeLoop locks the calling goroutine to its OS thread for good and
// puts that thread in SCHED_FIFO at priority prio: the event loop then
// runs its handlers to completion, as on a dedicated core, instead of
// sharing a time slice with whatever else the machine runs. A kernel-
// bypass deployment dedicates its polling cores; this is the nearest a
// shared machine comes. The loop sleeps in poll when idle, and Linux's
// RT throttling (kernel.sched_rt_runtime_us) leaves others a share even
// when it does not. prio 0 leaves the thread as it is.
func realtimeLoop(prio int) error {
	if prio == 0 {
		return nil
	}
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("-loop-priority %d: sched_setattr(SCHED_FIFO): %w (it needs CAP_SYS_NICE, or root; -loop-priority 0 keeps the normal scheduler)", prio, err)
	}
	return nil
}

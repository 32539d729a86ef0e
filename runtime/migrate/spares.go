package migrate

import (
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/internal/prefault"
	"time"
)

// The handlers that Work times allocate nothing. On this project's VMs an
// allocation that takes a fresh page costs a page fault of about 10 µs,
// and an allocation in a handler made one migration in ten slow (the
// host overhead's p99 was ten times its p50 while a fixed computation's
// was 1.01 times). So what a migration needs is made beforehand, after
// the call that used the last one (refill, at the unlock), with its pages
// mapped (prefault), and buffers are reused.

// maxKeptBuf bounds a buffer kept for reuse: a connection's state with
// both default queues full (2 x 256 KiB) fits; a larger one is not held on
// to.
const maxKeptBuf = 1 << 20

// keptBufs and maxKeptBytes bound the buffers kept: enough for the
// migrations a server has in flight at once (a state stays with its
// origin until the target acknowledges it), each with its queues.
const (
	keptBufs     = 32
	maxKeptBytes = 8 << 20
)

// keptMigrations bounds the forgotten migrations kept for reuse: one a
// Grace is forgotten for each that starts, so a few absorb the jitter.
const keptMigrations = 16

// refill makes the next migration's objects ready: forgotten ones when
// there are, so that a server's steady state allocates none (each new
// object is garbage a Grace later, and the collections it brings land in
// the handlers' timing). e.mu is held.
func (e *Engine) refill() {
	if e.spareOut == nil {
		if e.spareOut = pop(&e.freeOut); e.spareOut == nil {
			o := new(outgoing)
			prefault.Touch(o)
			o.steps = o.rec.step
			e.spareOut = o
		}
	}
	if e.spareIn == nil {
		if e.spareIn = pop(&e.freeIn); e.spareIn == nil {
			in := new(incoming)
			prefault.Touch(in)
			in.steps = in.rec.step
			e.spareIn = in
		}
	}
	if len(e.reasms) == 0 {
		e.reasms = append(e.reasms, e.newReassembler())
	}
	if len(e.bufs) < 2 {
		b := new([1024]byte)
		prefault.Touch(b)
		e.putBuf(b[:0])
	}
	if e.hostSpent {
		// A freeze, a hold or a restore took the host's spares: only then
		// (two locks) make new ones. It is that migration's work, done
		// ahead for the next one: its Work is charged, as a host that
		// allocates inside Restore (the kernel's) is.
		e.hostSpent = false
		if r, ok := e.host.(Reserver); ok {
			t0 := e.cfg.Clock()
			r.Reserve()
			if e.spentBy != nil {
				e.spentBy.Work += time.Duration(e.cfg.Clock() - t0)
			}
		}
		e.spentBy = nil
	}
}

// spend notes that the migration of rec took the host's spares.
func (e *Engine) spend(rec *Record) { e.hostSpent, e.spentBy = true, rec }

// Reserver is a Host that makes a restore's objects ready beforehand; the
// engine calls Reserve (e.mu held) after each call that may have used them.
type Reserver interface {
	Reserve()
}

// newOutgoing is the spare outgoing migration, cleared but for its steps
// callback. e.mu is held.
func (e *Engine) newOutgoing() *outgoing {
	o := e.spareOut
	e.spareOut = nil
	if o == nil { // a second Start in one call
		o = new(outgoing)
		o.steps = o.rec.step
	}
	return o
}

// newIncoming is newOutgoing's twin.
func (e *Engine) newIncoming() *incoming {
	in := e.spareIn
	e.spareIn = nil
	if in == nil {
		in = new(incoming)
		in.steps = in.rec.step
	}
	return in
}

func (e *Engine) newReassembler() *tcpmig.ConnStateReassembler {
	r := tcpmig.NewConnStateReassembler()
	r.MaxPending = 1 // a migration's own: one message
	r.Alloc = e.allocBuf
	return r
}

// allocBuf is the reassemblers' Alloc: a kept buffer when one is large
// enough, so that a state arrives in memory already mapped. e.mu is held.
func (e *Engine) allocBuf(n int) []byte {
	b := e.takeBuf(n)
	if cap(b) >= n {
		return b[:n]
	}
	e.putBuf(b)
	return make([]byte, n)
}

// takeReassembler is an empty reassembler. e.mu is held.
func (e *Engine) takeReassembler() *tcpmig.ConnStateReassembler {
	if r := pop(&e.reasms); r != nil {
		return r
	}
	return e.newReassembler()
}

// putReassembler keeps r, which must hold no message, for reuse.
func (e *Engine) putReassembler(r *tcpmig.ConnStateReassembler) {
	if r.Pending() == 0 && len(e.reasms) < keptBufs {
		e.reasms = append(e.reasms, r)
	}
}

// takeBuf is an empty kept buffer: the smallest with room for n bytes,
// or else (or when n, unknown, is 0) the largest; nil if none is kept. A
// new buffer's pages fault on first write (a 128 KiB state's 32 faults
// took 480 µs on this VM): kept ones are already mapped. e.mu is held.
func (e *Engine) takeBuf(n int) []byte {
	best := -1
	if n > 0 {
		for i, b := range e.bufs {
			if cap(b) >= n && (best < 0 || cap(b) < cap(e.bufs[best])) {
				best = i
			}
		}
	}
	if best < 0 {
		for i, b := range e.bufs {
			if best < 0 || cap(b) > cap(e.bufs[best]) {
				best = i
			}
		}
	}
	if best < 0 {
		return nil
	}
	return e.removeBuf(best)
}

// removeBuf takes the kept buffer i out, emptied. e.mu is held.
func (e *Engine) removeBuf(i int) []byte {
	b := e.bufs[i]
	last := len(e.bufs) - 1
	e.bufs[i], e.bufs[last] = e.bufs[last], nil
	e.bufs = e.bufs[:last]
	e.bufBytes -= cap(b)
	return b[:0]
}

// putBuf keeps b, which nothing refers to any more, for reuse: while
// under the bounds, or in place of the smallest kept buffer if b is
// larger. e.mu is held.
func (e *Engine) putBuf(b []byte) {
	c := cap(b)
	if c == 0 || c > maxKeptBuf {
		return
	}
	// b is kept if it fits once every smaller buffer is gone; then the
	// smallest go, only as many as the bounds need.
	n, bytes := len(e.bufs), e.bufBytes
	for _, k := range e.bufs {
		if cap(k) < c {
			n, bytes = n-1, bytes-cap(k)
		}
	}
	if n >= keptBufs || bytes+c > maxKeptBytes {
		return
	}
	for len(e.bufs) >= keptBufs || e.bufBytes+c > maxKeptBytes {
		small := 0
		for i := range e.bufs {
			if cap(e.bufs[i]) < cap(e.bufs[small]) {
				small = i
			}
		}
		e.removeBuf(small)
	}
	e.bufs = append(e.bufs, b[:0])
	e.bufBytes += c
}

// pop takes the last of *list out, or returns nil when it is empty.
func pop[T any](list *[]*T) *T {
	n := len(*list)
	if n == 0 {
		return nil
	}
	x := (*list)[n-1]
	(*list)[n-1] = nil
	*list = (*list)[:n-1]
	return x
}

// forgetOutgoing keeps o, which its forget timer just dropped from every
// map, for reuse. Nothing else refers to it: its machine ended a Grace
// ago, and that call's effects (its record, done) ran at the call's
// unlock. Timer entries that still name it are stale, and stay harmless
// once it is reused: live compares the entry's time with the object's
// own deadline, so an entry can only fire the object's current deadline
// at its time. e.mu is held.
func (e *Engine) forgetOutgoing(o *outgoing) {
	if len(e.freeOut) >= keptMigrations || o.frozen != nil {
		return
	}
	steps := o.steps // bound to &o.rec, which stays where it is
	*o = outgoing{}
	o.steps = steps
	e.freeOut = append(e.freeOut, o)
}

// forgetIncoming is forgetOutgoing's twin. A hold still filed under in
// (none should be, once its machine ended) keeps it from reuse. e.mu is
// held.
func (e *Engine) forgetIncoming(in *incoming) {
	if len(e.freeIn) >= keptMigrations || e.holds[in.id] == in {
		return
	}
	if in.reasm != nil {
		e.putReassembler(in.reasm)
	}
	steps := in.steps
	*in = incoming{}
	in.steps = steps
	e.freeIn = append(e.freeIn, in)
}
